/* osmem: the stand-in for glibc's include/shlib-compat.h when glibc's malloc
   tests are built outside glibc's build system (tests/test_glibc.py copies it
   beside config.h).  tst-compathooks-off needs only compat_symbol_reference:
   a reference to one exact, non-default version of a libc symbol (the removed
   __malloc_hook and friends, GLIBC_2_0 in glibc's sources).

   glibc generates the version names (abi-versions.h) from each port's oldest
   ABI: on x86-64 every GLIBC_2_0 .. GLIBC_2_2_5 symbol set is GLIBC_2.2.5.
   Only the sets a test uses are listed, so any other one fails to compile
   instead of silently naming a wrong version. */
#ifndef _SHLIB_COMPAT_H
#define _SHLIB_COMPAT_H 1

#if !defined __x86_64__ || defined __ILP32__
# error "tests/glibc/shlib-compat.h knows only x86-64's symbol versions"
#endif

#define OSMEM_VERSION_libc_GLIBC_2_0 "GLIBC_2.2.5"

/* As glibc's libc-symver.h spells symbol_version_reference. */
#define compat_symbol_reference(lib, local, symbol, version) \
  __asm__ (".symver " #local "," #symbol "@" OSMEM_VERSION_##lib##_##version)

#endif
