/*
 * trim_doc.c
 *	  The benchmark's native transform for Talaria's real event shape,
 *	  (ts timestamptz, doc jsonb): remove key1 .. key5 from the nested
 *	  object doc, keep everything else (make bench, test/bench/run.sh).
 *
 * Build: cc -shared -fPIC -O2 -I$(pg_config --includedir-server)/extension/talaria_transform \
 *			-o trim_doc.so trim_doc.c
 * Use:   SELECT talaria.register_native('trim_doc', '$libdir/trim_doc.so', 'trim_doc');
 */
#include "talaria_transform.h"

TT_DECLARE_PLUGIN();

/*
 * Find doc, then one pass over its members keeping the ones to keep: the
 * same work as PostgreSQL's jsonb_set(row, '{doc}', doc - '{key1,...}'),
 * and no allocation at all.  A row without an object doc is left as it is.
 */
TT_TRANSFORM(trim_doc)
{
	tt_value   *doc;
	uint32_t	i;
	uint32_t	kept = 0;

	if (call->row->type != TT_OBJECT)
		return call->host->error(call, "expected an object, got type %u", call->row->type);
	doc = call->host->get(call->row, "doc", 3);
	if (doc == NULL || doc->type != TT_OBJECT)
		return TT_OK;
	for (i = 0; i < doc->u.obj.count; i++)
	{
		const tt_str *k = &doc->u.obj.members[i].key;

		if (k->len == 4 && k->ptr[0] == 'k' && k->ptr[1] == 'e' &&
			k->ptr[2] == 'y' && k->ptr[3] >= '1' && k->ptr[3] <= '5')
			continue;
		if (kept != i)
			doc->u.obj.members[kept] = doc->u.obj.members[i];
		kept++;
	}
	doc->u.obj.count = kept;
	return TT_OK;
}
