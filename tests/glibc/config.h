/* osmem: the stand-in for glibc's generated config.h when glibc's malloc tests
   are built outside glibc's build system (tests/test_glibc.py force-includes it
   into every file it compiles, tests and support/ alike).

   Only what those files need is here.  glibc's own include/ tree is never put on
   the include path: its wrappers of <stdio.h>, <stdlib.h>, ... declare libc's
   internal symbols, and the tests must see the installed public headers, just as
   a program that links with osmem does. */

/* support/support_test_main.c scales each test's timeout by this; the
   TIMEOUTFACTOR environment variable overrides it at run time. */
#define TIMEOUTFACTOR 1

/* support/temp_file.c uses NAME_MAX, which glibc's internal headers bring in. */
#include <limits.h>
