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

/* glibc's libc-symbols.h makes this declare a hidden alias inside libc and
   nothing in any other module (its tests included).  The internal headers
   alloc_buffer.h, scratch_buffer.h and malloc/dynarray.h use it. */
#define libc_hidden_proto(name, ...)
