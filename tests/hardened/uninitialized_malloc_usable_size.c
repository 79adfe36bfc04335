/* Models hardened_malloc's test/uninitialized_malloc_usable_size.c: malloc_usable_size((void *)1) as the
 * program's first call of the malloc family. Expected: reported, abort. */
#include "probe.h"

int main(void)
{
	call_usable(opaque(1));
	return 0;
}
