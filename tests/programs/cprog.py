"""The multi-file C program that tests/test_programs.py compiles with gcc: write_sources(DIR) writes a header,
four hand-written .c files and one generated .c file of 240 functions (so cc1 has real work), and returns the
list of .c files. The program builds strings, a hash map and a sorted linked list on the heap, and prints
deterministic results."""
import os

COMMON_H = r"""
#ifndef COMMON_H
#define COMMON_H
#include <stddef.h>
#include <stdint.h>

struct strbuf { char *buf; size_t len, cap; };
void sb_init(struct strbuf *sb);
void sb_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_free(struct strbuf *sb);

struct map;
struct map *map_new(void);
void map_put(struct map *m, const char *key, long value);
int map_get(const struct map *m, const char *key, long *value);
int map_del(struct map *m, const char *key);
size_t map_size(const struct map *m);
uint64_t map_digest(const struct map *m);
void map_free(struct map *m);

struct node { long key; char *text; struct node *next; };
struct node *list_push(struct node *head, long key, const char *text);
struct node *list_sort(struct node *head);
void list_free(struct node *head);

uint32_t rng_next(uint32_t *state);
long generated_mix(int which, long x);
extern const int generated_count;
#endif
"""

STRBUF_C = r"""
#include "common.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(struct strbuf *sb) { sb->buf = NULL; sb->len = sb->cap = 0; }

void sb_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) abort();
	if (sb->len + (size_t)n + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap : 16;
		while (cap < sb->len + (size_t)n + 1) cap = cap * 3 / 2 + 1;
		char *p = realloc(sb->buf, cap);
		if (!p) abort();
		sb->buf = p;
		sb->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

void sb_free(struct strbuf *sb) { free(sb->buf); sb_init(sb); }
"""

MAP_C = r"""
#include "common.h"
#include <stdlib.h>
#include <string.h>

struct entry { char *key; long value; struct entry *next; };
struct map { struct entry **slots; size_t nslots, count; };

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	while (*s) { h ^= (unsigned char)*s++; h *= 1099511628211ULL; }
	return h;
}

struct map *map_new(void)
{
	struct map *m = calloc(1, sizeof *m);
	if (!m) abort();
	m->nslots = 8;
	m->slots = calloc(m->nslots, sizeof *m->slots);
	if (!m->slots) abort();
	return m;
}

static void grow(struct map *m)
{
	size_t n = m->nslots * 2;
	struct entry **s = calloc(n, sizeof *s);
	if (!s) abort();
	for (size_t i = 0; i < m->nslots; i++)
		for (struct entry *e = m->slots[i], *next; e; e = next) {
			next = e->next;
			size_t j = hash(e->key) & (n - 1);
			e->next = s[j];
			s[j] = e;
		}
	free(m->slots);
	m->slots = s;
	m->nslots = n;
}

void map_put(struct map *m, const char *key, long value)
{
	size_t i = hash(key) & (m->nslots - 1);
	for (struct entry *e = m->slots[i]; e; e = e->next)
		if (!strcmp(e->key, key)) { e->value = value; return; }
	struct entry *e = malloc(sizeof *e);
	if (!e || !(e->key = strdup(key))) abort();
	e->value = value;
	e->next = m->slots[i];
	m->slots[i] = e;
	if (++m->count > m->nslots) grow(m);
}

int map_get(const struct map *m, const char *key, long *value)
{
	for (struct entry *e = m->slots[hash(key) & (m->nslots - 1)]; e; e = e->next)
		if (!strcmp(e->key, key)) { *value = e->value; return 1; }
	return 0;
}

int map_del(struct map *m, const char *key)
{
	for (struct entry **pe = &m->slots[hash(key) & (m->nslots - 1)]; *pe; pe = &(*pe)->next)
		if (!strcmp((*pe)->key, key)) {
			struct entry *e = *pe;
			*pe = e->next;
			free(e->key);
			free(e);
			m->count--;
			return 1;
		}
	return 0;
}

size_t map_size(const struct map *m) { return m->count; }

uint64_t map_digest(const struct map *m)
{
	uint64_t d = 0;   /* order-independent: a sum of per-entry hashes */
	for (size_t i = 0; i < m->nslots; i++)
		for (struct entry *e = m->slots[i]; e; e = e->next)
			d += hash(e->key) * (uint64_t)(e->value | 1);
	return d;
}

void map_free(struct map *m)
{
	for (size_t i = 0; i < m->nslots; i++)
		for (struct entry *e = m->slots[i], *next; e; e = next) {
			next = e->next;
			free(e->key);
			free(e);
		}
	free(m->slots);
	free(m);
}
"""

LIST_C = r"""
#include "common.h"
#include <stdlib.h>
#include <string.h>

struct node *list_push(struct node *head, long key, const char *text)
{
	struct node *n = malloc(sizeof *n);
	if (!n || !(n->text = strdup(text))) abort();
	n->key = key;
	n->next = head;
	return n;
}

static struct node *merge(struct node *a, struct node *b)
{
	struct node head, *t = &head;
	while (a && b) {
		int take_a = a->key < b->key || (a->key == b->key && strcmp(a->text, b->text) <= 0);
		if (take_a) { t->next = a; a = a->next; } else { t->next = b; b = b->next; }
		t = t->next;
	}
	t->next = a ? a : b;
	return head.next;
}

struct node *list_sort(struct node *head)
{
	if (!head || !head->next) return head;
	struct node *slow = head, *fast = head->next;
	while (fast && fast->next) { slow = slow->next; fast = fast->next->next; }
	struct node *second = slow->next;
	slow->next = NULL;
	return merge(list_sort(head), list_sort(second));
}

void list_free(struct node *head)
{
	while (head) { struct node *n = head->next; free(head->text); free(head); head = n; }
}

uint32_t rng_next(uint32_t *state)
{
	*state = *state * 1103515245u + 12345u;
	return *state >> 1;
}
"""

MAIN_C = r"""
#include "common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	uint32_t st = 2024;
	struct map *m = map_new();
	struct node *list = NULL;
	struct strbuf sb;
	sb_init(&sb);
	char key[64];
	void *big[8] = {0};
	for (int round = 0; round < 60; round++) {
		for (int i = 0; i < 4000; i++) {
			snprintf(key, sizeof key, "k%u", rng_next(&st) % 30000);
			long v;
			if (map_get(m, key, &v) && (v & 3) == 0) map_del(m, key);
			else map_put(m, key, generated_mix(i % generated_count, (long)rng_next(&st)));
		}
		for (int i = 0; i < 500; i++) {
			snprintf(key, sizeof key, "t%u-%d", rng_next(&st) % 1000, round);
			list = list_push(list, (long)(rng_next(&st) % 5000), key);
		}
		sb_addf(&sb, "[%d:%zu]", round, map_size(m));
		free(big[round % 8]);                      /* large blocks: the mmap path */
		big[round % 8] = malloc(100000 + (size_t)(rng_next(&st) % 900000));
		if (!big[round % 8]) abort();
		memset(big[round % 8], round, 100000);
	}
	list = list_sort(list);
	long prev = -1, n = 0;
	unsigned long acc = 0;
	for (struct node *p = list; p; p = p->next, n++) {
		if (p->key < prev) { printf("list not sorted\n"); return 1; }
		prev = p->key;
		acc = acc * 31 + (unsigned long)p->key + strlen(p->text);
	}
	printf("map size %zu digest %016llx\n", map_size(m), (unsigned long long)map_digest(m));
	printf("list %ld nodes, acc %lu, first %s, last key %ld\n", n, acc, list->text, prev);
	printf("strbuf %zu bytes: %.60s\n", sb.len, sb.buf);
	long g = 0;
	for (int i = 0; i < generated_count; i++) g += generated_mix(i, 12345 + i);
	printf("generated %d functions, sum %ld\n", generated_count, g);
	for (int i = 0; i < 8; i++) free(big[i]);
	sb_free(&sb);
	list_free(list);
	map_free(m);
	return 0;
}
"""


def generated_c(n=240):
    out = ['#include "common.h"\n']
    for i in range(n):
        a, b, c = (i * 2654435761) % 1000 + 1, (i * 40503) % 97 + 3, i % 13 + 1
        out.append(f"""
static long gen{i}(long x)
{{
	long acc = {a};
	for (int k = 0; k < {c}; k++) {{
		switch ((x + k) % 5) {{
		case 0: acc += x * {b} - k; break;
		case 1: acc ^= (x << {i % 7 + 1}) + {a}; break;
		case 2: acc -= (x >> {i % 5 + 1}) * {c}; break;
		case 3: acc = acc * 3 + {b}; break;
		default: acc += {i} - k * x; break;
		}}
		x = (x * 1103515245 + 12345) & 0x7fffffff;
	}}
	return acc;
}}
""")
    out.append("\nstatic long (*const table[])(long) = {\n" + ",\n".join(f"\tgen{i}" for i in range(n)) + "\n};\n")
    out.append(f"const int generated_count = {n};\n")
    out.append("long generated_mix(int which, long x) { return table[which % generated_count](x); }\n")
    return "".join(out)


def write_sources(d):
    files = {"common.h": COMMON_H, "strbuf.c": STRBUF_C, "map.c": MAP_C, "list.c": LIST_C, "main.c": MAIN_C,
             "generated.c": generated_c()}
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text.lstrip("\n"))
    return sorted(n for n in files if n.endswith(".c"))
