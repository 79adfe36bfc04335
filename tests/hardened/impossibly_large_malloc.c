/* Models hardened_malloc's test/impossibly_large_malloc.c: malloc of SIZE_MAX - 7 bytes.
 * Expected: NULL (exit 0; exit 1 if a pointer came back). */
#include "probe.h"

int main(void)
{
	return call_malloc(SIZE_MAX - 7) != NULL;
}
