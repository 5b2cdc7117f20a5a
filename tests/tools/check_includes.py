#!/usr/bin/env python3
"""Check the module rules of docs/architecture.md on src/ and include/avemo/:

- a file of src/MOD includes no "OTHER/..." header of another module (internals stay inside);
- no file includes another module's *_internal.h;
- the modules' dependencies (a public header <avemo/X.h> used by src/MOD or include/avemo/MOD.h)
  form no cycle; in particular eval and train do not depend on each other both ways.
Usage: check_includes.py REPO_ROOT
"""
import os
import re
import sys

QUOTED = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
PUBLIC = re.compile(r'^\s*#\s*include\s+<avemo/([a-z_]+)\.h>', re.M)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[1]
    src = os.path.join(root, 'src')
    problems, deps = [], {}
    modules = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    for mod in modules:
        uses = deps.setdefault(mod, set())
        header = os.path.join(root, 'include', 'avemo', mod + '.h')
        files = [header] if os.path.exists(header) else []
        for dirpath, _, names in os.walk(os.path.join(src, mod)):
            files += [os.path.join(dirpath, n) for n in names if n.endswith(('.c', '.h'))]
        for path in files:
            text = open(path, encoding='utf-8', errors='replace').read()
            for inc in QUOTED.findall(text):
                owner = inc.split('/')[0] if '/' in inc else mod
                if owner != mod:
                    problems.append(f'{path}: includes "{inc}" of module {owner}')
                elif inc.endswith('_internal.h') and '/' not in inc and not os.path.exists(os.path.join(src, mod, inc)):
                    problems.append(f'{path}: includes "{inc}"')
            uses.update(h for h in PUBLIC.findall(text) if h not in (mod, 'avemo'))
    # cycles in the module graph (only modules that have a folder in src/)
    graph = {m: {d for d in deps[m] if d in deps} for m in deps}
    state = {}

    def visit(m, path):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                problems.append('dependency cycle: ' + ' -> '.join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    for p in problems:
        print(p)
    if not problems:
        for m in sorted(graph):
            print(f'{m}: {" ".join(sorted(graph[m])) or "-"}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
