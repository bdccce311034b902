/*
 * trim.c
 *	  Talaria's trim: remove key1 .. key5 from every row.
 *
 * Build: cc -shared -fPIC -O2 -I$(pg_config --includedir-server)/extension/talaria_transform \
 *			-o trim.so trim.c
 * Use:   SELECT talaria.register_native('trim', '$libdir/trim.so', 'trim');
 */
#include "talaria_transform.h"

TT_DECLARE_PLUGIN();

/*
 * One pass over the members, keeping the ones to keep: the same work as
 * PostgreSQL's jsonb - text[], and no allocation at all.
 */
TT_TRANSFORM(trim)
{
	tt_value   *row = call->row;
	uint32_t	i;
	uint32_t	kept = 0;

	if (row->type != TT_OBJECT)
		return call->host->error(call, "expected an object, got type %u", row->type);
	for (i = 0; i < row->u.obj.count; i++)
	{
		const tt_str *k = &row->u.obj.members[i].key;

		if (k->len == 4 && k->ptr[0] == 'k' && k->ptr[1] == 'e' &&
			k->ptr[2] == 'y' && k->ptr[3] >= '1' && k->ptr[3] <= '5')
			continue;
		if (kept != i)
			row->u.obj.members[kept] = row->u.obj.members[i];
		kept++;
	}
	row->u.obj.count = kept;
	return TT_OK;
}

/* The same through the host's functions: shorter, five lookups. */
TT_TRANSFORM(trim_host)
{
	static const char *const keys[] = {"key1", "key2", "key3", "key4", "key5"};
	int			i;

	for (i = 0; i < 5; i++)
		call->host->remove(call->row, keys[i], 4);
	return TT_OK;
}
