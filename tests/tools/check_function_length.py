#!/usr/bin/env python3
"""Fail when a function in src/ is longer than a limit (default 100 lines).

A function is a top-level brace block whose opening line (or the line before it) looks
like a definition: `type name(args)` followed by `{`.  Lines are counted from the line
holding the name to the closing brace, both included.  Usage:
    check_function_length.py [--max N] SRC_DIR
"""
import os
import re
import sys



def strip(text):
    """Blank out comments and string/char literals, keeping newlines."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
        elif text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            out.append(c + re.sub(r'[^\n]', ' ', text[i + 1:j]) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def functions(path):
    """(name, first line, last line) of every function definition in a C file."""
    text = strip(open(path, encoding='utf-8', errors='replace').read())
    text = re.sub(r'^[ \t]*#.*$', lambda m: ' ' * len(m.group(0)), text, flags=re.M)
    depth, head_from, start, name = 0, 0, None, None
    for i, ch in enumerate(text):
        if ch == '{':
            if depth == 0:
                # text since the previous top-level statement: `type name(args)` makes a function
                head = text[head_from:i]
                m = re.search(r'([A-Za-z_]\w*)\s*\([^;{}=]*\)\s*$', head)
                start, name = (text.count('\n', 0, head_from + m.start(1)) + 1, m.group(1)) if m else (None, None)
            depth += 1
        elif ch == '}':
            depth -= 1
            if depth == 0:
                if start is not None:
                    yield name, start, text.count('\n', 0, i) + 1
                start, head_from = None, i + 1
        elif ch == ';' and depth == 0:
            head_from = i + 1


def main(argv):
    limit, args = 100, argv[1:]
    if args[:1] == ['--max']:
        limit, args = int(args[1]), args[2:]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    bad = 0
    for root, _, files in sorted(os.walk(args[0])):
        for f in sorted(files):
            if not f.endswith('.c'):
                continue
            path = os.path.join(root, f)
            for name, first, last in functions(path):
                if last - first + 1 > limit:
                    print(f'{path}:{first}: {name} is {last - first + 1} lines (limit {limit})')
                    bad += 1
    if bad:
        print(f'{bad} function(s) longer than {limit} lines', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
