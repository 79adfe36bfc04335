/* Models hardened_malloc's test/uninitialized_free.c: free((void *)1) as the program's first call of the malloc
 * family. Expected: reported, abort (no crash inside the allocator). */
#include "probe.h"

int main(void)
{
	call_free(opaque(1));
	return 0;
}
