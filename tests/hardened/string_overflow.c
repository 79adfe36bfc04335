/* Models hardened_malloc's test/string_overflow.c: a 16-byte block filled with 'a' up to its usable size (no
 * terminating zero of its own), then strlen of it; prints "overflow by N bytes", N = strlen - usable size.
 * hardened_malloc measures the block with malloc_usable_size here too.
 * Expected (the byte after the usable size is zero: hardened_malloc's canary starts with a zero byte):
 * exit 0, "overflow by 0 bytes". */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(16);
	if (!block)
		return SETUP_FAILED;
	size_t usable = call_usable(block);
	memset(block, 'a', usable);
	size_t (*volatile length)(const char *) = strlen;
	printf("overflow by %zu bytes\n", length(block) - usable);
	return 0;
}
