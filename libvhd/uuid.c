/* uuid.c: GUIDs and UUIDs through libuuid. */
#include <string.h>
#include <uuid/uuid.h>

#include "internal.h"

void
uuid_generate_bytes (uint8_t id[16])
{
  uuid_generate (id);
}

void
uuid_to_string (const uint8_t id[16], char out[37])
{
  uuid_unparse_lower (id, out);
}

bool
uuid_is_null_bytes (const uint8_t id[16])
{
  return uuid_is_null (id) != 0;
}
