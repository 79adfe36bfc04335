/* Models hardened_malloc's test/uninitialized_realloc.c: realloc((void *)1, 16) as the program's first call of
 * the malloc family. Expected: reported, abort. */
#include "probe.h"

int main(void)
{
	if (!call_realloc(opaque(1), 16))
		return SETUP_FAILED;
	return 0;
}
