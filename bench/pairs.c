/* pairs: `pairs N` runs N malloc+free pairs of 16..256 bytes; for instruction counts per pair under callgrind
 * (run it with N and 2N: the difference divided by N is the cost of one pair). */
#include <stdlib.h>
static void *volatile sink;
int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	for (long i = 0; i < n; i++) {
		char *p = malloc(16 + (size_t)(i & 15) * 16);
		p[0] = (char)i;
		sink = p;
		free(p);
	}
	return 0;
}
