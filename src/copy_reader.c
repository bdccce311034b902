/*-------------------------------------------------------------------------
 *
 * copy_reader.c
 *	  The text and CSV reader of COPY FROM into a pipeline source.
 *
 * tt_ingest_copy() parses the input with this reader instead of
 * NextCopyFrom() when it can.  It reads the same bytes from the same
 * source (the file or program BeginCopyFrom opened, or the client's
 * CopyData messages), accepts and rejects the same input with the same
 * errors and error context, and produces the same values; it is only
 * faster.  PostgreSQL 15's reader moves every byte through three
 * character-at-a-time loops (line end, field split, de-escaping) and
 * costs about 50 instructions per input byte; this one skips ordinary
 * bytes with a class table and copies runs with memcpy.
 *
 * The rules reproduced here are those of copyfromparse.c in PostgreSQL
 * 15: CopyReadLine/CopyReadLineText for line ends (quotes, escapes, the
 * \r / \n / \r\n styles, the \. end marker), CopyReadAttributesText/CSV
 * for fields (null marker, de-escaping, quoted fields) and NextCopyFrom
 * for the columns (missing and extra data, FORCE_NOT_NULL, FORCE_NULL,
 * defaults of the columns not read).  tt_copy_reader_begin() returns NULL
 * for what it does not reproduce, and the caller uses NextCopyFrom():
 * binary format, HEADER MATCH, a file encoding other than the server's,
 * and data from a callback.
 *
 * Input is verified in the file's encoding chunk by chunk, as PostgreSQL
 * does, and an invalid byte is reported only when the parser reaches it
 * (so an end marker before it still ends the COPY cleanly).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "commands/copy.h"
#include "commands/copyfrom_internal.h"
#include "commands/progress.h"
#include "executor/executor.h"
#include "ingest.h"
#include "libpq/libpq.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "talaria.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"

#define READ_CHUNK 65536

/* byte classes of the scanning loops (0: an ordinary byte) */
#define C_PLAIN		0
#define C_SPECIAL	1

struct TTCopyReader
{
	CopyFromState cstate;
	int			natts;			/* of the relation */
	int			nread;			/* columns read from the input */
	int		   *attidx;			/* their attribute indexes, input order */
	bool	   *is_text;		/* per attribute: plain textin */
	bool	   *is_jsonb;		/* per attribute: plain jsonb_in */
	uint64		jsonb_fast;		/* jsonb values parsed here */
	uint64		jsonb_slow;		/* and by jsonb_in */

	bool		csv;
	char		delimc;
	char		quotec;
	char		escapec;		/* '\0' when the same as quotec */
	char		field_escape;	/* the ESCAPE option itself */
	EolType		eol;

	/* input: buf[pos, vlen) is verified, buf[vlen, len) is not yet */
	char	   *buf;
	int			cap;			/* allocated bytes, one more than usable */
	int			pos;
	int			len;
	int			vlen;
	bool		raw_eof;		/* the source has no more bytes */
	bool		bad_bytes;		/* buf[vlen..] cannot be verified */
	int			encoding;

	/* fields of the current line */
	char	  **fields;			/* NULL for the null marker */
	int		   *flen;
	int			max_fields;

	uint8		line_class[256];
	uint8		field_class[256];	/* unquoted part of a field */
	uint8		quoted_class[256];	/* inside quotes (CSV) */
};

/* ---------------------------------------------------------------------
 * Reading from the source
 * ---------------------------------------------------------------------
 */

/* CopyGetData's frontend branch: at least one byte, or EOF (CopyDone). */
static int
read_frontend(TTCopyReader *r, char *dst, int maxread)
{
	CopyFromState cstate = r->cstate;
	StringInfo	msg = cstate->fe_msgbuf;
	int			avail;

	while (msg->cursor >= msg->len)
	{
		int			mtype;
		int			maxmsglen;

		HOLD_CANCEL_INTERRUPTS();
		pq_startmsgread();
		mtype = pq_getbyte();
		if (mtype == EOF)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("unexpected EOF on client connection with an open transaction")));
		switch (mtype)
		{
			case 'd':			/* CopyData */
				maxmsglen = PQ_LARGE_MESSAGE_LIMIT;
				break;
			case 'c':			/* CopyDone */
			case 'f':			/* CopyFail */
			case 'H':			/* Flush */
			case 'S':			/* Sync */
				maxmsglen = PQ_SMALL_MESSAGE_LIMIT;
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("unexpected message type 0x%02X during COPY from stdin",
								mtype)));
				maxmsglen = 0;	/* keep compiler quiet */
				break;
		}
		if (pq_getmessage(msg, maxmsglen))
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("unexpected EOF on client connection with an open transaction")));
		RESUME_CANCEL_INTERRUPTS();
		switch (mtype)
		{
			case 'd':
				break;
			case 'c':
				return 0;
			case 'f':
				ereport(ERROR,
						(errcode(ERRCODE_QUERY_CANCELED),
						 errmsg("COPY from stdin failed: %s",
								pq_getmsgstring(msg))));
				break;
			default:
				/* Flush, Sync: ignored, as PostgreSQL does */
				break;
		}
	}
	avail = msg->len - msg->cursor;
	if (avail > maxread)
		avail = maxread;
	pq_copymsgbytes(msg, dst, avail);
	return avail;
}

static int
read_source(TTCopyReader *r, char *dst, int maxread)
{
	CopyFromState cstate = r->cstate;
	int			n;

	if (cstate->copy_src == COPY_FRONTEND)
		return read_frontend(r, dst, maxread);
	n = fread(dst, 1, maxread, cstate->copy_file);
	if (ferror(cstate->copy_file))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read from COPY file: %m")));
	return n;
}

/* Verifies what was added to buf[vlen, len) as far as it can. */
static void
verify(TTCopyReader *r)
{
	if (r->len > r->vlen)
	{
		int			ok = pg_encoding_verifymbstr(r->encoding,
												 r->buf + r->vlen,
												 r->len - r->vlen);

		r->vlen += ok;
		if (ok == 0 && (r->raw_eof ||
						r->len - r->vlen >= pg_database_encoding_max_length()))
			r->bad_bytes = true;
	}
}

/*
 * Makes more verified input available past buf[len of what is there],
 * keeping buf[*keep, len): *keep and *at are moved with the data.
 * Returns false at the end of the input.  Reports an invalid byte
 * sequence when the next byte to parse is one.
 */
static bool
fill(TTCopyReader *r, int *keep, int *at)
{
	CopyFromState cstate = r->cstate;

	for (;;)
	{
		int			n;

		if (r->vlen > *at)
			return true;
		/* an invalid sequence, or an incomplete one at the end */
		if (r->bad_bytes || (r->raw_eof && r->vlen < r->len))
			report_invalid_encoding(r->encoding, r->buf + r->vlen, r->len - r->vlen);
		if (r->raw_eof)
			return false;

		/* move what is kept to the front; grow when it fills the buffer */
		if (*keep > 0)
		{
			memmove(r->buf, r->buf + *keep, r->len - *keep);
			r->len -= *keep;
			r->vlen -= *keep;
			*at -= *keep;
			*keep = 0;
		}
		if (r->cap - 1 - r->len < READ_CHUNK / 2)
		{
			if ((Size) r->cap * 2 > MaxAllocSize)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("COPY line is too long")));
			r->cap *= 2;
			r->buf = repalloc(r->buf, r->cap);
		}
		n = read_source(r, r->buf + r->len, r->cap - 1 - r->len);
		if (n == 0)
			r->raw_eof = true;
		r->len += n;
		r->buf[r->len] = '\0';
		cstate->bytes_processed += n;
		pgstat_progress_update_param(PROGRESS_COPY_BYTES_PROCESSED,
									 cstate->bytes_processed);
		verify(r);
	}
}

/* Is buf[*at] available (filling if needed)?  Moves *start and *at. */
static inline bool
have(TTCopyReader *r, int *start, int *at)
{
	if (likely(*at < r->vlen))
		return true;
	return fill(r, start, at);
}

/* After \. : ignore the rest of the client's data, as PostgreSQL does. */
static void
drain_frontend(TTCopyReader *r)
{
	if (r->cstate->copy_src == COPY_FRONTEND)
	{
		char		sink[8192];

		while (!r->raw_eof)
		{
			if (read_frontend(r, sink, sizeof(sink)) == 0)
				r->raw_eof = true;
		}
		r->pos = r->len = r->vlen = 0;
		r->buf[0] = '\0';
		r->bad_bytes = false;
	}
}

/* ---------------------------------------------------------------------
 * Lines
 * ---------------------------------------------------------------------
 */

static void
newline_error(TTCopyReader *r, bool cr)
{
	if (cr)
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 !r->csv ?
				 errmsg("literal carriage return found in data") :
				 errmsg("unquoted carriage return found in data"),
				 !r->csv ?
				 errhint("Use \"\\r\" to represent carriage return.") :
				 errhint("Use quoted CSV field to represent carriage return.")));
	ereport(ERROR,
			(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
			 !r->csv ?
			 errmsg("literal newline found in data") :
			 errmsg("unquoted newline found in data"),
			 !r->csv ?
			 errhint("Use \"\\n\" to represent newline.") :
			 errhint("Use quoted CSV field to represent newline.")));
}

/*
 * Reads the next line into cstate->line_buf, without its end of line.
 * Returns true when the input ended (at EOF or at the \. marker) instead
 * of a newline; the line may still hold data then.
 */
static bool
read_line(TTCopyReader *r)
{
	CopyFromState cstate = r->cstate;
	const uint8 *cls = r->line_class;
	bool		csv = r->csv;
	bool		first = true;
	bool		in_quote = false;
	bool		last_was_esc = false;
	int			start = r->pos;
	int			i = r->pos;
	int			end;			/* the line's data ends here */
	bool		done = false;

	resetStringInfo(&cstate->line_buf);
	cstate->line_buf_valid = false;

	for (;;)
	{
		char		c;

		if (!first)
		{
			int			from = i;

			/* skip ordinary bytes: buf[len] is '\0', a special byte */
			while (cls[(uint8) r->buf[i]] == C_PLAIN)
				i++;
			if (i > r->vlen)
				i = r->vlen;
			if (i > from)
				last_was_esc = false;	/* they were not the escape */
		}
		if (!have(r, &start, &i))
		{
			end = i;
			done = true;
			break;
		}
		c = r->buf[i++];

		if (csv)
		{
			if (c == '\\' || c == '\r')
				(void) have(r, &start, &i);	/* look-ahead below */
			if (in_quote && c == r->escapec)
				last_was_esc = !last_was_esc;
			if (c == r->quotec && !last_was_esc)
				in_quote = !in_quote;
			if (c != r->escapec)
				last_was_esc = false;
			if (in_quote && c == (r->eol == EOL_NL ? '\n' : '\r'))
				cstate->cur_lineno++;
		}

		if (c == '\r' && (!csv || !in_quote))
		{
			if (r->eol == EOL_UNKNOWN || r->eol == EOL_CRNL)
			{
				bool		more = have(r, &start, &i);

				end = i - 1;
				if (more && r->buf[i] == '\n')
				{
					i++;
					r->eol = EOL_CRNL;
				}
				else
				{
					if (r->eol == EOL_CRNL)
						newline_error(r, true);
					r->eol = EOL_CR;
				}
			}
			else
			{
				if (r->eol == EOL_NL)
					newline_error(r, true);
				end = i - 1;
			}
			break;
		}
		if (c == '\n' && (!csv || !in_quote))
		{
			if (r->eol == EOL_CR || r->eol == EOL_CRNL)
				newline_error(r, false);
			r->eol = EOL_NL;
			end = i - 1;
			break;
		}
		if (c == '\\' && (!csv || first))
		{
			char		c2;
			int			prev_off;	/* the backslash, from start (fill
									 * moves both) */

			if (!have(r, &start, &i))
			{
				/* a backslash just before EOF is data */
				end = i;
				done = true;
				break;
			}
			prev_off = i - 1 - start;
			c2 = r->buf[i];
			if (c2 == '.')
			{
				bool		not_marker = false;

				i++;
				if (r->eol == EOL_CRNL)
				{
					c2 = have(r, &start, &i) ? r->buf[i] : '\0';
					i++;
					if (c2 == '\n')
					{
						if (!csv)
							ereport(ERROR,
									(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
									 errmsg("end-of-copy marker does not match previous newline style")));
						not_marker = true;
					}
					else if (c2 != '\r')
					{
						if (!csv)
							ereport(ERROR,
									(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
									 errmsg("end-of-copy marker corrupt")));
						not_marker = true;
					}
				}
				if (!not_marker)
				{
					c2 = have(r, &start, &i) ? r->buf[i] : '\0';
					i++;
					if (c2 != '\r' && c2 != '\n')
					{
						if (!csv)
							ereport(ERROR,
									(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
									 errmsg("end-of-copy marker corrupt")));
						not_marker = true;
					}
				}
				if (!not_marker)
				{
					if ((r->eol == EOL_NL && c2 != '\n') ||
						(r->eol == EOL_CRNL && c2 != '\n') ||
						(r->eol == EOL_CR && c2 != '\r'))
						ereport(ERROR,
								(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
								 errmsg("end-of-copy marker does not match previous newline style")));
					end = start + prev_off;
					done = true;
					break;
				}
				/* \. followed by data, in CSV: data */
				i = start + prev_off + 1;
			}
			else if (!csv)
				i++;			/* the escaped byte is data, whatever it is */
		}
		first = false;
	}

	/* i may be one past len after a marker at EOF */
	r->pos = Min(i, r->len);
	appendBinaryStringInfo(&cstate->line_buf, r->buf + start, end - start);
	if (done)
		drain_frontend(r);
	cstate->line_buf_valid = true;
	return done;
}

/* ---------------------------------------------------------------------
 * Fields
 * ---------------------------------------------------------------------
 */

static inline void
field_slot(TTCopyReader *r, int fieldno)
{
	if (unlikely(fieldno >= r->max_fields))
	{
		r->max_fields *= 2;
		r->fields = repalloc(r->fields, r->max_fields * sizeof(char *));
		r->flen = repalloc(r->flen, r->max_fields * sizeof(int));
	}
}

static inline bool
is_null_marker(CopyFromState cstate, const char *s, int len)
{
	return len == cstate->opts.null_print_len &&
		strncmp(s, cstate->opts.null_print, len) == 0;
}

static int
hex_value(char c)
{
	if (isdigit((unsigned char) c))
		return c - '0';
	return tolower((unsigned char) c) - 'a' + 10;
}

/* attribute_buf, emptied and as long as the line (fields never are longer) */
static inline char *
fields_begin(CopyFromState cstate)
{
	resetStringInfo(&cstate->attribute_buf);
	if (cstate->attribute_buf.maxlen <= cstate->line_buf.len)
		enlargeStringInfo(&cstate->attribute_buf, cstate->line_buf.len);
	return cstate->attribute_buf.data;
}

/*
 * Copies the ordinary bytes at *cur to out, up to the first byte of class
 * C_SPECIAL (line_buf ends with '\0', which is one); returns the new out.
 */
static inline char *
copy_plain(const uint8 *cls, char **cur, char *out)
{
	char	   *run = *cur;
	char	   *p = run;

	while (cls[(uint8) *p] == C_PLAIN)
		p++;
	if (p > run)
	{
		memcpy(out, run, p - run);
		out += p - run;
	}
	*cur = p;
	return out;
}

/* CopyReadAttributesText's rules */
static int
split_text(TTCopyReader *r)
{
	CopyFromState cstate = r->cstate;
	const uint8 *cls = r->field_class;
	char	   *cur = cstate->line_buf.data;
	char	   *line_end = cur + cstate->line_buf.len;
	char	   *out = fields_begin(cstate);
	int			fieldno = 0;

	for (;;)
	{
		bool		found_delim = false;
		bool		saw_non_ascii = false;
		char	   *start = cur;
		char	   *end;
		char	   *fstart = out;

		field_slot(r, fieldno);
		for (;;)
		{
			char		c;

			out = copy_plain(cls, &cur, out);
			end = cur;
			if (cur >= line_end)
				break;
			c = *cur++;
			if (c == r->delimc)
			{
				found_delim = true;
				break;
			}
			/* c is a backslash */
			if (cur >= line_end)
				break;			/* a trailing backslash is dropped */
			c = *cur++;
			switch (c)
			{
				case '0':
				case '1':
				case '2':
				case '3':
				case '4':
				case '5':
				case '6':
				case '7':
					{
						int			val = c - '0';

						if (cur < line_end && *cur >= '0' && *cur <= '7')
						{
							val = (val << 3) + (*cur++ - '0');
							if (cur < line_end && *cur >= '0' && *cur <= '7')
								val = (val << 3) + (*cur++ - '0');
						}
						c = val & 0377;
						if (c == '\0' || IS_HIGHBIT_SET(c))
							saw_non_ascii = true;
					}
					break;
				case 'x':
					if (cur < line_end && isxdigit((unsigned char) *cur))
					{
						int			val = hex_value(*cur++);

						if (cur < line_end && isxdigit((unsigned char) *cur))
							val = (val << 4) + hex_value(*cur++);
						c = val & 0xff;
						if (c == '\0' || IS_HIGHBIT_SET(c))
							saw_non_ascii = true;
					}
					break;
				case 'b':
					c = '\b';
					break;
				case 'f':
					c = '\f';
					break;
				case 'n':
					c = '\n';
					break;
				case 'r':
					c = '\r';
					break;
				case 't':
					c = '\t';
					break;
				case 'v':
					c = '\v';
					break;
				default:
					/* any other byte after a backslash is itself */
					break;
			}
			*out++ = c;
		}

		if (is_null_marker(cstate, start, end - start))
			r->fields[fieldno] = NULL;
		else
		{
			if (saw_non_ascii)
				pg_verifymbstr(fstart, out - fstart, false);
			r->fields[fieldno] = fstart;
			r->flen[fieldno] = out - fstart;
		}
		*out++ = '\0';
		fieldno++;
		if (!found_delim)
			break;
	}
	cstate->attribute_buf.len = out - 1 - cstate->attribute_buf.data;
	return fieldno;
}

/* CopyReadAttributesCSV's rules */
static int
split_csv(TTCopyReader *r)
{
	CopyFromState cstate = r->cstate;
	const uint8 *cls = r->field_class;
	const uint8 *qcls = r->quoted_class;
	char	   *cur = cstate->line_buf.data;
	char	   *line_end = cur + cstate->line_buf.len;
	char	   *out = fields_begin(cstate);
	int			fieldno = 0;

	for (;;)
	{
		bool		found_delim = false;
		bool		saw_quote = false;
		char	   *start = cur;
		char	   *end;
		char	   *fstart = out;

		field_slot(r, fieldno);
		for (;;)
		{
			char		c;

			/* not in quotes: up to a delimiter, a quote or the end */
			for (;;)
			{
				out = copy_plain(cls, &cur, out);
				end = cur;
				if (cur >= line_end)
					goto endfield;
				c = *cur++;
				if (c == r->delimc)
				{
					found_delim = true;
					goto endfield;
				}
				/* c is the quote */
				saw_quote = true;
				break;
			}
			/* in quotes: up to the closing quote */
			for (;;)
			{
				out = copy_plain(qcls, &cur, out);
				end = cur;
				if (cur >= line_end)
					ereport(ERROR,
							(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
							 errmsg("unterminated CSV quoted field")));
				c = *cur++;
				if (c == r->field_escape && cur < line_end &&
					(*cur == r->field_escape || *cur == r->quotec))
				{
					*out++ = *cur++;
					continue;
				}
				if (c == r->quotec)
					break;
				*out++ = c;		/* an escape before something else */
			}
		}
endfield:
		*out++ = '\0';
		if (!saw_quote && is_null_marker(cstate, start, end - start))
			r->fields[fieldno] = NULL;
		else
		{
			r->fields[fieldno] = fstart;
			r->flen[fieldno] = out - 1 - fstart;
		}
		fieldno++;
		if (!found_delim)
			break;
	}
	cstate->attribute_buf.len = out - 1 - cstate->attribute_buf.data;
	return fieldno;
}

/* ---------------------------------------------------------------------
 * Rows
 * ---------------------------------------------------------------------
 */

TTCopyReader *
tt_copy_reader_begin(CopyFromState cstate)
{
	TupleDesc	desc = RelationGetDescr(cstate->rel);
	TTCopyReader *r;
	ListCell   *lc;
	int			k;

	if (cstate->opts.binary || cstate->need_transcoding ||
		cstate->opts.header_line == COPY_HEADER_MATCH ||
		cstate->convert_select_flags != NULL ||
		(cstate->copy_src != COPY_FILE && cstate->copy_src != COPY_FRONTEND) ||
		list_length(cstate->attnumlist) == 0)
		return NULL;

	r = palloc0(sizeof(TTCopyReader));
	r->cstate = cstate;
	r->natts = desc->natts;
	r->nread = list_length(cstate->attnumlist);
	r->attidx = palloc(sizeof(int) * r->nread);
	r->is_text = palloc0(sizeof(bool) * r->natts);
	r->is_jsonb = palloc0(sizeof(bool) * r->natts);
	k = 0;
	foreach(lc, cstate->attnumlist)
	{
		int			m = lfirst_int(lc) - 1;

		r->attidx[k++] = m;
		r->is_text[m] = cstate->in_functions[m].fn_oid == F_TEXTIN;
		r->is_jsonb[m] = cstate->in_functions[m].fn_oid == F_JSONB_IN;
	}

	r->csv = cstate->opts.csv_mode;
	r->delimc = cstate->opts.delim[0];
	if (r->csv)
	{
		r->quotec = cstate->opts.quote[0];
		r->escapec = cstate->opts.escape[0];
		r->field_escape = r->escapec;
		if (r->escapec == r->quotec)
			r->escapec = '\0';
	}
	r->eol = EOL_UNKNOWN;
	r->encoding = cstate->file_encoding;

	r->cap = 2 * READ_CHUNK + 1;
	r->buf = palloc(r->cap);
	r->buf[0] = '\0';
	r->max_fields = Max(r->nread, 1);
	r->fields = palloc(sizeof(char *) * r->max_fields);
	r->flen = palloc(sizeof(int) * r->max_fields);

	r->line_class[0] = C_SPECIAL;
	r->line_class['\n'] = C_SPECIAL;
	r->line_class['\r'] = C_SPECIAL;
	r->field_class[0] = C_SPECIAL;
	r->field_class[(uint8) r->delimc] = C_SPECIAL;
	if (r->csv)
	{
		r->line_class[(uint8) r->quotec] = C_SPECIAL;
		r->line_class[(uint8) r->escapec] = C_SPECIAL;
		r->field_class[(uint8) r->quotec] = C_SPECIAL;
		r->quoted_class[0] = C_SPECIAL;
		r->quoted_class[(uint8) r->quotec] = C_SPECIAL;
		r->quoted_class[(uint8) r->field_escape] = C_SPECIAL;
	}
	else
	{
		r->line_class['\\'] = C_SPECIAL;
		r->field_class['\\'] = C_SPECIAL;
	}
	return r;
}

/*
 * A reader for the rest of a COPY that PostgreSQL's reader has begun (in
 * CopyFrom, the library loaded at its first row): it starts with the
 * bytes PostgreSQL has read from the source but not parsed, and reads on
 * from the source.  PostgreSQL's reader is left finding its input at its
 * end, so that CopyFrom's next NextCopyFrom() ends the COPY.  Only for a
 * COPY into rel, without WHERE or FREEZE, that tt_copy_reader_begin()
 * would take.
 */
TTCopyReader *
tt_copy_reader_takeover(CopyFromState cstate, Relation rel)
{
	TTCopyReader *r;
	int			n;

	if (cstate->rel != rel || cstate->whereClause != NULL ||
		cstate->opts.freeze || cstate->input_buf != cstate->raw_buf ||
		cstate->input_buf_index < cstate->raw_buf_index ||
		(r = tt_copy_reader_begin(cstate)) == NULL)
		return NULL;
	n = cstate->raw_buf_len - cstate->input_buf_index;
	if (n > r->cap - 1)
	{
		r->cap = n + 1;
		r->buf = repalloc(r->buf, r->cap);
	}
	memcpy(r->buf, cstate->raw_buf + cstate->input_buf_index, n);
	r->len = n;
	r->buf[n] = '\0';
	r->raw_eof = cstate->raw_reached_eof;
	r->eol = cstate->eol_type;
	verify(r);

	cstate->input_buf_index = cstate->input_buf_len = 0;
	cstate->raw_buf_index = cstate->raw_buf_len = 0;
	cstate->raw_buf[0] = '\0';
	cstate->raw_reached_eof = true;
	cstate->input_reached_eof = true;
	return r;
}

/* the end of the input: says how the jsonb values were parsed */
static bool
reader_end(TTCopyReader *r)
{
	if (r->jsonb_fast + r->jsonb_slow > 0)
		ereport(DEBUG1,
				(errmsg_internal("talaria: COPY parsed " UINT64_FORMAT " jsonb values itself and " UINT64_FORMAT " with jsonb_in",
								 r->jsonb_fast, r->jsonb_slow)));
	return false;
}

/*
 * NextCopyFrom() for a reader: false at the end of the input.  Call in the
 * per-tuple memory context of econtext (defaults are evaluated there).
 */
bool
tt_copy_reader_next(TTCopyReader *r, ExprContext *econtext,
					Datum *values, bool *nulls)
{
	CopyFromState cstate = r->cstate;
	TupleDesc	desc = RelationGetDescr(cstate->rel);
	int			nfields;
	int			k;
	bool		done;

	memset(values, 0, sizeof(Datum) * r->natts);
	memset(nulls, true, sizeof(bool) * r->natts);

	if (cstate->cur_lineno == 0 && cstate->opts.header_line != COPY_HEADER_FALSE)
	{
		cstate->cur_lineno++;
		if (read_line(r))
			return reader_end(r);
	}
	cstate->cur_lineno++;
	done = read_line(r);
	if (done && cstate->line_buf.len == 0)
		return reader_end(r);

	nfields = r->csv ? split_csv(r) : split_text(r);
	if (nfields > r->nread)
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("extra data after last expected column")));

	for (k = 0; k < r->nread; k++)
	{
		int			m = r->attidx[k];
		Form_pg_attribute att = TupleDescAttr(desc, m);
		char	   *s;

		if (k >= nfields)
			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("missing data for column \"%s\"",
							NameStr(att->attname))));
		s = r->fields[k];
		if (r->csv)
		{
			if (s == NULL && cstate->opts.force_notnull_flags[m])
				s = cstate->opts.null_print;
			else if (s != NULL && cstate->opts.force_null_flags[m] &&
					 strcmp(s, cstate->opts.null_print) == 0)
				s = NULL;
		}
		if (s != NULL && r->is_text[m])
		{
			/*
			 * What textin does, without the call and the strlen (a field
			 * holds no '\0': the input was verified, and so was a field
			 * whose escapes made one).
			 */
			int			len = s == r->fields[k] ? r->flen[k] : strlen(s);

			values[m] = PointerGetDatum(cstring_to_text_with_len(s, len));
			nulls[m] = false;
			continue;
		}
		cstate->cur_attname = NameStr(att->attname);
		cstate->cur_attval = s;
		if (s != NULL && r->is_jsonb[m])
		{
			/*
			 * jsonb_in's value, made faster; NULL for what the fast parser
			 * leaves to jsonb_in (among them every invalid input, so that
			 * the error is jsonb_in's).
			 */
			int			len = s == r->fields[k] ? r->flen[k] : strlen(s);
			Jsonb	   *jb = tt_json_text_to_jsonb(s, len);

			if (jb != NULL)
			{
				r->jsonb_fast++;
				values[m] = JsonbPGetDatum(jb);
				nulls[m] = false;
				cstate->cur_attname = NULL;
				cstate->cur_attval = NULL;
				continue;
			}
			r->jsonb_slow++;
		}
		values[m] = InputFunctionCall(&cstate->in_functions[m], s,
									  cstate->typioparams[m], att->atttypmod);
		if (s != NULL)
			nulls[m] = false;
		cstate->cur_attname = NULL;
		cstate->cur_attval = NULL;
	}

	for (k = 0; k < cstate->num_defaults; k++)
	{
		int			m = cstate->defmap[k];

		values[m] = ExecEvalExpr(cstate->defexprs[k], econtext, &nulls[m]);
	}
	return true;
}
