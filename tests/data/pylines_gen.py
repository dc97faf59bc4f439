#!/usr/bin/python3
"""Generate tests/data/pylines.txt: for a few real functions, their 3.11
co_linetable and the line of every code unit as CPython's own
code.co_positions() reports it (None -> -1). Run with Debian's
/usr/bin/python3 (3.11): /usr/bin/python3 tests/data/pylines_gen.py > tests/data/pylines.txt
Format, one function per line:
  qualname firstlineno linetable-hex line,line,...
"""
import sys


def simple(a, b):
    c = a + b
    return c * 2


def loops(n):
    total = 0
    for i in range(n):
        if i % 3 == 0:
            total += i
        else:
            total -= 1
    while total > 100:
        total //= 2
    return total


def far_jump(x):
    y = [
        x,
        x + 1,
        x + 2,
    ]



    # a long gap so line deltas need the long form / varints














































    z = sum(y)
    try:
        z /= x
    except ZeroDivisionError:
        z = -1
    return (z,
            y)


class Outer:
    def method(self, v):
        def inner(w):
            return w * v
        return [inner(k) for k in range(v)]


async def coro(q):
    await q
    return 1


FUNCS = [simple, loops, far_jump, Outer.method, coro]


def lines(code):
    return [-1 if p[0] is None else p[0] for p in code.co_positions()]


def walk(code):
    yield code
    for c in code.co_consts:
        if hasattr(c, "co_positions"):
            yield from walk(c)


for f in FUNCS:
    for code in walk(f.__code__):
        print(code.co_qualname.replace(" ", "_"), code.co_firstlineno, code.co_linetable.hex(),
              ",".join(str(x) for x in lines(code)))
