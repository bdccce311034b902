//! A talaria_transform plugin in Rust: Talaria's trim, and a computed column.
//!
//!   trim        removes key1 .. key5 from the row, in place, allocating nothing
//!   word_count  an integer: the number of words in the row's "body" string
//!
//! Build (Debian's rustc, no crates):
//!
//!   rustc --edition 2021 --crate-type cdylib -C opt-level=2 -o talaria_rust.so trim.rs
//!
//! The declarations below are talaria_transform.h written out by hand:
//! same order, same types, #[repr(C)].
#![allow(non_camel_case_types)]

use std::ffi::CString;
use std::mem::size_of;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

// ---- talaria_transform.h, ABI version 1 ----
pub const TT_ABI_VERSION: u32 = 1;
pub const TT_NULL: u32 = 0;
pub const TT_INT: u32 = 2;
pub const TT_STRING: u32 = 5;
pub const TT_OBJECT: u32 = 6;
pub const TT_OK: c_int = 0;
pub const TT_ERROR: c_int = 2;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct tt_str {
    pub ptr: *const c_char,
    pub len: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct tt_obj {
    pub members: *mut tt_member,
    pub count: u32,
    pub cap: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct tt_arr {
    pub items: *mut tt_value,
    pub count: u32,
    pub cap: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union tt_union {
    pub b: c_int,
    pub i: i64,
    pub f: f64,
    pub ts: i64,
    pub str: tt_str,
    pub obj: tt_obj,
    pub arr: tt_arr,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct tt_value {
    pub type_: u32,
    pub host_tag: u32,
    pub u: tt_union,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct tt_member {
    pub key: tt_str,
    pub value: tt_value,
}

#[repr(C)]
pub struct tt_host {
    pub abi_version: u32,
    pub size: u32,
    pub alloc: unsafe extern "C" fn(*mut tt_call, usize) -> *mut c_void,
    pub get: unsafe extern "C" fn(*const tt_value, *const c_char, usize) -> *mut tt_value,
    pub put: unsafe extern "C" fn(*mut tt_call, *mut tt_value, *const c_char, usize) -> *mut tt_value,
    pub remove: unsafe extern "C" fn(*mut tt_value, *const c_char, usize) -> c_int,
    pub append: unsafe extern "C" fn(*mut tt_call, *mut tt_value) -> *mut tt_value,
    pub set_string: unsafe extern "C" fn(*mut tt_call, *mut tt_value, *const c_char, usize) -> c_int,
    pub set_object: unsafe extern "C" fn(*mut tt_value),
    pub set_array: unsafe extern "C" fn(*mut tt_value),
    pub error: unsafe extern "C" fn(*mut tt_call, *const c_char, ...) -> c_int,
    pub interrupted: unsafe extern "C" fn(*mut tt_call) -> c_int,
}

#[repr(C)]
pub struct tt_call {
    pub size: u32,
    pub _pad: u32,
    pub host: *const tt_host,
    pub transform: *const c_char,
    pub row: *mut tt_value,
    pub result: *mut tt_value,
    pub host_private: *mut c_void,
}

#[repr(C)]
pub struct tt_plugin_info {
    pub abi_version: u32,
    pub sizeof_value: u32,
    pub sizeof_call: u32,
    pub sizeof_host: u32,
}

// TT_DECLARE_PLUGIN()
#[no_mangle]
pub static talaria_plugin_info: tt_plugin_info = tt_plugin_info {
    abi_version: TT_ABI_VERSION,
    sizeof_value: size_of::<tt_value>() as u32,
    sizeof_call: size_of::<tt_call>() as u32,
    sizeof_host: size_of::<tt_host>() as u32,
};
// ---- end of the header ----

unsafe fn str_bytes<'a>(s: &tt_str) -> &'a [u8] {
    if s.len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(s.ptr as *const u8, s.len as usize)
    }
}

unsafe fn fail(call: *mut tt_call, msg: &str) -> c_int {
    let msg = CString::new(msg.replace('\0', " ")).unwrap();
    ((*(*call).host).error)(call, b"%s\0".as_ptr() as *const c_char, msg.as_ptr())
}

/// Runs a transform; a panic must not unwind into the server, so it becomes
/// TT_ERROR.
unsafe fn guarded(call: *mut tt_call, f: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(status) => status,
        Err(_) => fail(call, "panic in the plugin"),
    }
}

#[no_mangle]
pub unsafe extern "C" fn trim(call: *mut tt_call) -> c_int {
    guarded(call, || {
        let row = &mut *(*call).row;
        if row.type_ != TT_OBJECT {
            return fail(call, &format!("expected an object, got type {}", row.type_));
        }
        let obj = &mut row.u.obj;
        let members = std::slice::from_raw_parts_mut(obj.members, obj.count as usize);
        let mut kept = 0;
        for i in 0..members.len() {
            let k = str_bytes(&members[i].key);
            if k.len() == 4 && &k[..3] == b"key" && (b'1'..=b'5').contains(&k[3]) {
                continue;
            }
            members[kept] = members[i];
            kept += 1;
        }
        obj.count = kept as u32;
        TT_OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn word_count(call: *mut tt_call) -> c_int {
    guarded(call, || {
        let host = &*(*call).host;
        let body = (host.get)((*call).row, b"body".as_ptr() as *const c_char, 4);
        if body.is_null() || (*body).type_ != TT_STRING {
            return fail(call, "\"body\" must be a string");
        }
        let text = String::from_utf8_lossy(str_bytes(&(*body).u.str));
        let result = (host.alloc)(call, size_of::<tt_value>()) as *mut tt_value;
        if result.is_null() {
            return TT_ERROR; // the host reports the exhausted arena
        }
        *result = tt_value {
            type_: TT_INT,
            host_tag: 0,
            u: tt_union { i: text.split_whitespace().count() as i64 },
        };
        (*call).result = result;
        TT_OK
    })
}
