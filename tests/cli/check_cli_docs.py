"""The program's documentation agrees with the program.

usage: check_cli_docs.py AVEMO SOURCE_DIR [--update]

- docs/cli.md: the command list is `avemo help` and each command's section holds `avemo help CMD`
  word for word (--update rewrites those blocks from the program);
- every option a command's parser takes (the getopt tables in src/cli/) is in its --help, and in
  its section of the man page docs/avemo.1, which lists no option the command does not take;
- the man page renders without a groff warning;
- the bash completion (deploy/bash-completion/avemo) loads in bash and offers exactly the commands
  of `avemo help` and, for each command, exactly the options its parser takes.
"""
import os
import re
import shutil
import subprocess
import sys

failures = []
COMMON = {"--help", "--quiet", "--verbose"}  # taken by main() for every command


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def commands(program):
    return re.findall(r"^  ([a-z]+) ", run([program, "help"])[1], re.M)


def parser_options(src, command):
    """The long options of the command's own getopt table in src/cli/cmd_COMMAND.c (eval, compare
    and calibrate share a parser, src/cli/eval_common.c, but each has its table: getopt refuses
    what is not in it)."""
    if command == "merge":
        return {"--metrics"}  # parsed by hand: `avemo merge --metrics OUT EVAL_SHARD...`
    text = open(os.path.join(src, "src", "cli", "cmd_%s.c" % command)).read()
    return {"--" + m for m in re.findall(r'\{"([a-z][a-z-]*)", (?:no|required|optional)_argument', text)}


def cli_md(program, src, names, update):
    path = os.path.join(src, "docs", "cli.md")
    text = open(path).read()
    blocks = {"": run([program, "help"])[1]}
    blocks.update({name: run([program, "help", name])[1] for name in names})
    if update:
        text = re.sub(r"```\nusage: avemo COMMAND.*?```", lambda m: "```\n" + blocks[""] + "```", text, count=1,
                      flags=re.S)
        for name in names:
            pattern = r"(## avemo %s\n\n```\n).*?```" % name
            if re.search(pattern, text, re.S):
                text = re.sub(pattern, lambda m: m.group(1) + blocks[name] + "```", text, count=1, flags=re.S)
            else:
                text = text.rstrip("\n") + "\n\n## avemo %s\n\n```\n%s```\n" % (name, blocks[name])
        open(path, "w").write(text)
    check("```\n" + blocks[""] + "```" in text, "docs/cli.md has the command list of `avemo help`")
    for name in names:
        check("## avemo %s\n\n```\n%s```" % (name, blocks[name]) in text,
              "docs/cli.md: the section of %s is `avemo help %s`" % (name, name))


def man_sections(roff):
    """Each command's text in the man page: its .SS sections up to the next .SS or .SH."""
    sections = {}
    for m in re.finditer(r'^\.SS "avemo ([a-z]+)[^"]*"\n(.*?)(?=^\.S[SH] )', roff, re.M | re.S):
        sections[m.group(1)] = sections.get(m.group(1), "") + m.group(2)
    return sections


def man_page(program, src, names):
    path = os.path.join(src, "docs", "avemo.1")
    groff = shutil.which("groff")
    check(groff is not None, "groff is installed (Debian groff-base) to render the man page")
    if groff:
        rc, out, err = run([groff, "-man", "-Tutf8", "-ww", "-z", path])
        check(rc == 0 and err == "", "groff -man -ww renders docs/avemo.1 without a warning (%r)" % err[:300])
    roff = open(path).read()
    sections = man_sections(roff)
    for name in names:
        check(name in sections, "the man page has a section for avemo %s" % name)
        taken = parser_options(src, name) if name not in ("help", "version") else set()
        help_text = run([program, name, "--help"])[1]
        undocumented = sorted(o for o in taken if not re.search(re.escape(o) + r"\b", help_text))
        check(not undocumented, "every option of %s is in its --help (missing: %s)" % (name, undocumented))
        section = sections.get(name, "").replace("\\-", "-")
        defined = set(re.findall(r"^\.(?:B|BI|BR) (--[a-z][a-z-]*)", section, re.M))
        check(taken <= defined, "the man page defines every option of %s (missing: %s)"
              % (name, sorted(taken - defined)))
        check(defined <= taken | COMMON, "the man page's options of %s are all taken (not: %s)"
              % (name, sorted(defined - taken - COMMON)))
    common = re.search(r"^\.SH COMMON OPTIONS\n(.*?)^\.SH ", roff, re.M | re.S).group(1).replace("\\-", "-")
    check(all(o in common for o in COMMON), "the man page explains --quiet, --verbose and --help")


def complete(src, program, words):
    """COMPREPLY of the completion for the command line `words` (the last one being completed)."""
    script = os.path.join(src, "deploy", "bash-completion", "avemo")
    quoted = " ".join("'%s'" % w for w in [program] + words)
    shell = ('source "$1" || exit 3; COMP_WORDS=(%s); COMP_CWORD=%d; _avemo; '
             'printf "%%s\\n" "${COMPREPLY[@]}"') % (quoted, len(words))
    rc, out, err = run(["bash", "--norc", "-c", shell, "bash", script])
    return rc, [w for w in out.splitlines() if w], err


def completion(program, src, names):
    rc, got, err = complete(src, program, [""])
    check(rc == 0 and err == "" and set(got) == set(names) | {"--help", "--version"},
          "completion loads in bash and offers the commands of `avemo help` (%s %r)" % (got, err[:200]))
    rc, got, _ = complete(src, program, ["cl"])
    check(got == ["classify"], "'avemo cl<TAB>' -> classify (%s)" % got)
    for name in names:
        if name in ("help", "version"):
            continue
        rc, got, err = complete(src, program, [name, "--"])
        want = parser_options(src, name) | COMMON
        check(rc == 0 and set(got) == want and len(got) == len(set(got)),
              "'avemo %s --<TAB>' offers exactly its options (extra: %s, missing: %s)"
              % (name, sorted(set(got) - want), sorted(want - set(got))))
    rc, got, _ = complete(src, program, ["classify", "--cs"])
    check(got == ["--csv"], "'avemo classify --cs<TAB>' -> --csv (%s)" % got)
    rc, got, _ = complete(src, program, ["classify", "--mode", "a"])
    check(sorted(got) == ["audio", "av"], "'avemo classify --mode a<TAB>' -> av audio (%s)" % got)
    rc, got, _ = complete(src, program, ["help", "ev"])
    check(got == ["eval"], "'avemo help ev<TAB>' -> eval (%s)" % got)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    program, src = os.path.abspath(sys.argv[1]), sys.argv[2]
    names = commands(program)
    check(len(names) >= 12 and "classify" in names, "avemo help lists the commands (%s)" % names)
    cli_md(program, src, names, len(sys.argv) == 4 and sys.argv[3] == "--update")
    man_page(program, src, names)
    completion(program, src, names)
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
