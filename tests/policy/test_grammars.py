#!/usr/bin/env python3
"""Argument grammars against the attacks of issue 10 and against the real
tools.

1. Each attack is first run for real where that is cheap (GNU sort, git,
   make, python3, node are on the machine): it must really run a program of
   our choosing (a marker file appears), else the test proves nothing. Then
   the bundled pack that allows the tool must refuse it, and the ordinary
   read-only commands that deny-lists refused must be allowed.
2. Every getopt_long grammar, and git's parse-options subcommands, are
   compared with the tool option by option: an option the grammar says
   takes a value must make the real tool say it "requires" one when it is
   missing, one it says takes none must make the tool refuse "--opt=x". A
   wrong arity would let the next word hide from the parser (sort -c
   --compress-program=sh).
3. Abbreviations: a prefix the grammar resolves uniquely is accepted by the
   tool, one it finds ambiguous the tool rejects as ambiguous.

usage: test_grammars.py PATH/TO/warrant"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

WARRANT = sys.argv[1]
failures = []
ran = 0


def check(name, cond, detail=""):
    global ran
    ran += 1
    if not cond:
        failures.append(f"{name}: {detail}")


def contract(argv, cwd="/workspace", reads=("/workspace/**",), writes=(), network="deny"):
    return {
        "version": "csc.v0.1", "contract_id": "grammar-test-1", "intent": "t",
        "actor": {"agent_id": "a", "session_id": "s", "initiating_user": "u", "delegation_scope": "d"},
        "commands": [{"id": "cmd_1", "exec": {"argv": argv}, "cwd": cwd, "read_paths": list(reads),
                      "write_paths": list(writes), "network": network, "env_allow": [], "secret_refs": [],
                      "timeout_sec": 10, "proposed_effect_type": "observe"}],
        "risk_class": "low", "approval_mode": "policy_only", "justification": "j"}


def decide(pack, argv, **kw):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(contract(argv, **kw), f)
    try:
        p = subprocess.run([WARRANT, "check", "--policy", pack, f.name], capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(f.name)
    if p.returncode not in (0, 1):
        return "error", p.stderr.strip()
    d = json.loads(p.stdout)
    return d["decision"], d["reason_codes"][0] + ": " + d["reasons"][0]


def explain(argv, pack="default"):
    p = subprocess.run([WARRANT, "policy", "explain", "--policy", pack, "--", *argv], capture_output=True,
                       text=True, timeout=60)
    return json.loads(p.stdout)


def grammar(tool, pack):
    p = subprocess.run([WARRANT, "policy", "grammar", tool, "--policy", pack], capture_output=True, text=True,
                       timeout=60)
    return json.loads(p.stdout)


PACKS = {}


def pack_file(name, tmp):
    """The bundled pack as a file, so that `warrant check --policy` reads exactly it."""
    if name not in PACKS:
        src = os.path.join(os.environ.get("WARRANT_SRC", "."), "policies", name + ".yaml")
        PACKS[name] = os.path.join(tmp, name + ".yaml")
        shutil.copy(src, PACKS[name])
    return PACKS[name]


def real(argv, cwd, stdin=b"", timeout=20):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": cwd, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, timeout=timeout, env=env)


def marker_script(d):
    """A program that leaves a marker and otherwise acts like cat."""
    path = os.path.join(d, "x.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\ntouch \"$(dirname \"$0\")/MARKER\"\nexec cat \"$@\"\n")
    os.chmod(path, 0o755)
    return path


def ran_for_real(name, argv, cwd, stdin=b"", pre=None):
    """Runs the attack with the real tool; True when it ran our program."""
    marker = os.path.join(cwd, "MARKER")
    if os.path.exists(marker):
        os.unlink(marker)
    if pre:
        pre()
    if shutil.which(argv[0]) is None:
        return None
    real(argv, cwd, stdin)
    hit = os.path.exists(marker)
    check(f"real {name}", hit, f"{argv} did not run the marker program: the attack must be real")
    return hit


def refused(name, pack, argv, tmp, **kw):
    got, why = decide(pack_file(pack, tmp), argv, **kw)
    check(f"{pack} refuses {name}", got == "deny", f"{argv}: {got} {why}")


def allowed(name, pack, argv, tmp, **kw):
    got, why = decide(pack_file(pack, tmp), argv, **kw)
    check(f"{pack} allows {name}", got == "allow", f"{argv}: {got} {why}")


def attacks(tmp):
    d = tempfile.mkdtemp(dir=tmp)
    x = marker_script(d)
    big = os.path.join(d, "big")
    with open(big, "w") as f:
        f.writelines(f"{i * 7919 % 100003}\n" for i in range(200000))
    py_lib = subprocess.run(["python3", "-c", "import timeit,os;print(os.path.dirname(timeit.__file__))"],
                            capture_output=True, text=True).stdout.strip()

    # -- abbreviated long options --------------------------------------------
    a = ["sort", "-S", "64k", f"--compress-prog={x}", "big"]
    ran_for_real("sort --compress-prog", a, d)
    refused("sort --compress-prog=", "default", a, tmp)
    refused("sort -c --compress-program (value hidden behind a flag)", "default", ["sort", "-c", "--compress-program=sh", "f"], tmp)

    repo = os.path.join(d, "repo")
    os.makedirs(repo)
    real(["git", "init", "-q"], repo)
    with open(os.path.join(repo, "a.txt"), "w") as f:
        f.write("needle\npush\n")
    real(["git", "add", "a.txt"], repo)
    real(["git", "commit", "-qm", "c"], repo)
    shutil.copy(x, os.path.join(repo, "x.sh"))
    a = ["git", "grep", "--open-files-in-pag=./x.sh", "needle"]
    if ran_for_real("git grep --open-files-in-pag=", a, repo):
        pass
    refused("git grep --open-files-in-pag=", "default", a, tmp)
    # git grep's pattern ends its options: a later "--opt" is a revision or
    # path to git, and so it is to the grammar
    a = ["git", "grep", "needle", "--open-files-in-pager=./x.sh"]
    if os.path.exists(os.path.join(repo, "MARKER")):
        os.unlink(os.path.join(repo, "MARKER"))
    real(a, repo)
    check("real git grep PATTERN --opt is not an option", not os.path.exists(os.path.join(repo, "MARKER")))
    check("grammar: git grep PATTERN --opt is an operand",
          explain(a, pack_file("default", tmp)).get("effect") == "observe")
    # ... while git log permutes: an option after a revision still counts
    a = ["git", "log", "HEAD", "--output=/workspace/out"]
    check("grammar: git log REV --output= counts", explain(a, pack_file("default", tmp)).get("effect") ==
          "transform_local")
    # -iO…: a cluster that ends in -O with its value attached
    a = ["git", "grep", "-iO./x.sh", "needle"]
    ran_for_real("git grep -iO", a, repo)
    refused("git grep -iO<pager>", "default", a, tmp)

    mk = os.path.join(d, "mk")
    os.makedirs(mk)
    with open(os.path.join(mk, "Makefile"), "w") as f:
        f.write("all:\n\t@true\n")
    a = ["make", "--eva=$(shell touch MARKER)"]
    ran_for_real("make --eva=", a, mk)
    refused("make --eva=", "dev-write", a, tmp)
    refused("make --eva=", "ci", a, tmp, writes=["/workspace/**"])
    a = ["make", "--ev", "$(shell touch MARKER)"]
    refused("make --ev (detached)", "ci", a, tmp)

    # -- URL schemes in any case ---------------------------------------------
    js = os.path.join(d, "t.js")
    with open(js, "w") as f:
        f.write("\n")
    a = ["node", "--import", "DATA:text/javascript,import('fs').then(f=>f.writeFileSync('MARKER',''))", "t.js"]
    ran_for_real("node --import DATA:", a, d)
    refused("node --import DATA:", "default", a, tmp)
    refused("git clone EXT::", "ci", ["git", "clone", "EXT::sh -c id", "x"], tmp, network="allowlisted")

    # -- interpreters running code from outside the workspace ---------------
    a = ["python3", os.path.join(py_lib, "timeit.py"), "__import__('os').system('touch MARKER')"]
    ran_for_real("python3 timeit.py", a, d)
    refused("python3 <stdlib>/timeit.py", "default", ["python3", "/usr/lib/python3.11/timeit.py", "1"], tmp)
    refused("python3 <stdlib>/timeit.py read as declared", "default", a, tmp, reads=["/workspace/**", py_lib + "/**"])
    refused("python3 /usr/lib/…/pdb.py --command", "default",
            ["python3", "/usr/lib/python3.11/pdb.py", "--command", "c", "s.py"], tmp)
    pickle = subprocess.run(["python3", "-c", "import pickle,os\nclass P:\n def __reduce__(s): return (os.system,('touch MARKER',))\n"
                             "import sys;sys.stdout.buffer.write(pickle.dumps(P()))"], capture_output=True).stdout
    a = ["python3", "-m", "pickle", "-"]
    ran_for_real("python3 -m pickle -", a, d, stdin=pickle)
    refused("python3 -m pickle -", "default", a, tmp)
    refused("python3 -mpickle", "ci", ["python3", "-mpickle", "-"], tmp)
    a = ["python3", "/dev/stdin"]
    ran_for_real("python3 /dev/stdin", a, d, stdin=b"import os; os.system('touch MARKER')\n")
    refused("python3 /dev/stdin", "default", a, tmp, reads=["/workspace/**", "/dev/stdin"])
    refused("python3 -", "default", ["python3", "-"], tmp)
    refused("python3 (program on stdin)", "default", ["python3"], tmp)
    refused("python3 -I -c", "default", ["python3", "-I", "-c", "1"], tmp)
    refused("node npm-cli.js exec", "default", ["node", "/usr/lib/node_modules/npm/bin/npm-cli.js", "exec", "x"], tmp)
    refused("node workspace node_modules", "default", ["node", "node_modules/npm/bin/npm-cli.js", "exec", "x"], tmp)
    refused("node ../../usr/lib…", "default", ["node", "../../usr/lib/node_modules/npm/bin/npm-cli.js"], tmp)
    link = os.path.join(d, "u.py")
    os.symlink(os.path.join(py_lib, "timeit.py"), link)
    refused("python3 workspace symlink to timeit.py", "default", ["python3", link, "1"], tmp, cwd=d,
            reads=[d + "/**"])

    # -- subcommands and helpers that run programs ---------------------------
    refused("git remote-ext", "default", ["git", "remote-ext", "origin", "sh -c id"], tmp)
    refused("git help (pager/browser)", "default", ["git", "help", "log"], tmp)
    a = ["make", "-f", "-"]
    ran_for_real("make -f -", a, mk, stdin=b"all:\n\ttouch MARKER\n")
    refused("make -f -", "dev-write", a, tmp)
    refused("make -f /tmp/x", "ci", ["make", "-f", "/tmp/Makefile"], tmp)
    refused("make VAR=… (rewrites recipes)", "ci", ["make", "CC=sh -c id"], tmp)
    refused("make -C <outside>", "ci", ["make", "-C", "/usr/share/doc/x"], tmp)
    refused("npm --prefix <outside>", "ci", ["npm", "test", "--prefix", "/usr/lib/node_modules/npm"], tmp)
    refused("patch --ed", "dev-write", ["patch", "--ed", "f", "p.ed"], tmp)
    tpl = os.path.join(d, "tpl", "hooks")
    os.makedirs(tpl)
    with open(os.path.join(tpl, "post-checkout"), "w") as f:
        f.write("#!/bin/sh\ntouch \"$GIT_DIR/../../MARKER\"\n")
    os.chmod(os.path.join(tpl, "post-checkout"), 0o755)
    a = ["git", "-c", f"init.templateDir={os.path.dirname(tpl)}", "clone", "-q", repo, "cl"]
    ran_for_real("git -c init.templateDir= clone (hooks)", a, d)
    refused("git -c init.templateDir=", "ci", a, tmp, network="allowlisted")
    refused("git -c core.pager=", "default", ["git", "-c", "core.pager=sh -c id", "log"], tmp)
    refused("git --exec-path=DIR", "default", ["git", "--exec-path=/workspace/evil", "status"], tmp)
    refused("git -cX=Y (glued)", "default", ["git", "-ccolor.ui=never", "log"], tmp)
    refused("tar -xf HOST:FILE (rsh)", "ci", ["tar", "-xf", "host:a.tar"], tmp, writes=["/workspace/**"])
    refused("tar --to-com=", "ci", ["tar", "-xf", "a.tar", "--to-com=sh"], tmp, writes=["/workspace/**"])
    refused("tar xIf (old style)", "ci", ["tar", "xIf", "sh", "a.tar"], tmp, writes=["/workspace/**"])
    refused("find -exec", "default", ["find", ".", "-exec", "sh", "-c", "id", ";"], tmp)
    refused("npm exec", "ci", ["npm", "exec", "cowsay"], tmp)
    refused("npm --script-sh=", "ci", ["npm", "test", "--script-sh=sh"], tmp)
    refused("unknown option fails closed", "default", ["ls", "--some-future-option"], tmp)
    refused("ambiguous abbreviation fails closed", "default", ["sort", "--s", "f"], tmp)

    # -- what the deny-lists refused, now allowed -----------------------------
    allowed("git grep push", "default", ["git", "grep", "push"], tmp)
    allowed("git log -- config", "default", ["git", "log", "--", "config"], tmp)
    allowed("python3 tool.py -c cfg.yml", "default", ["python3", "tool.py", "-c", "cfg.yml"], tmp)
    allowed("git -c color.ui=never log", "default", ["git", "-c", "color.ui=never", "log", "--oneline"], tmp)
    allowed("sort --rev (abbreviation)", "default", ["sort", "--rev", "f"], tmp)
    allowed("git grep -in needle", "default", ["git", "grep", "-in", "needle"], tmp)
    allowed("git log -5 --stat", "default", ["git", "log", "-5", "--stat"], tmp)
    allowed("git -C sub status", "default", ["git", "-C", "sub", "status", "--short"], tmp)
    allowed("find -name", "default", ["find", ".", "-name", "*.c", "-type", "f"], tmp)
    allowed("node tool.js", "default", ["node", "--no-warnings", "tool.js", "-e", "x"], tmp)
    allowed("python3 -m pytest (allowed_modules)", "ci", ["python3", "-m", "pytest", "-q"], tmp,
            writes=["/workspace/**"])
    allowed("make -j2 test", "ci", ["make", "-j2", "test"], tmp, writes=["/workspace/**"])
    allowed("tar -tzf", "ci", ["tar", "-tzf", "a.tar.gz"], tmp)
    allowed("echo -x (printed, not an option)", "default", ["echo", "-x", "--y"], tmp)


PROBE_TOOLS = ["ls", "cat", "grep", "head", "tail", "wc", "sort", "uniq", "diff", "cmp", "stat", "cut", "tr", "nl",
               "basename", "dirname", "realpath", "sha256sum", "pwd", "cp", "mv", "rm", "mkdir", "touch", "tee",
               "patch", "tar", "make"]


def probe(tool, arg, d):
    try:
        return real([tool, arg], d, timeout=3).stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return ""  # it ran (tail -f): no complaint about the option


def arity(tmp):
    """Each option's value arity as the real tool has it: a short option
    alone at the end, a long one alone and with "=x"."""
    d = tempfile.mkdtemp(dir=tmp)
    for tool in PROBE_TOOLS:
        if shutil.which(tool) is None:
            continue
        for o in grammar(tool, pack_file("default", tmp))["options"]:
            arg = o.get("arg", "none")
            if o.get("short"):
                err = probe(tool, "-" + o["short"], d)
                check(f"{tool} -{o['short']} value arity is {arg}",
                      ("requires an argument" in err) == (arg == "required"), err[:200])
            if not o.get("long"):
                continue
            name = o["long"]
            if arg == "required":
                err = probe(tool, f"--{name}", d)
                check(f"{tool} --{name} takes a value", "requires an argument" in err, err[:200])
            else:
                err = probe(tool, f"--{name}=x", d)
                check(f"{tool} --{name} value is {arg}", ("doesn't allow an argument" in err) == (arg == "none"),
                      err[:200])


def git_arity(tmp):
    """The same for git's parse-options subcommands (those the grammar marks
    negation: true): "requires a value" / "takes no value"."""
    if shutil.which("git") is None:
        return
    repo = tempfile.mkdtemp(dir=tmp)
    real(["git", "init", "-q"], repo)
    g = grammar("git", pack_file("default", tmp))
    for sub, level in g["subcommands"].items():
        if not level.get("negation"):
            continue
        for o in level.get("options", []):
            name, arg = o.get("long"), o.get("arg", "none")
            if o.get("short") and arg == "required":
                err = probe_git(repo, [sub, "-" + o["short"]])
                check(f"git {sub} -{o['short']} takes a value", "requires a value" in err or
                      ("malformed object name" in err and "HEAD" in err), err[:200])
            if not name or arg == "optional":
                continue
            err = probe_git(repo, [sub, f"--{name}"] if arg == "required" else [sub, f"--{name}=x"])
            want = "requires a value" if arg == "required" else "takes no value"
            # --contains, --merged, --points-at: a value unless last, then HEAD
            last_default = arg == "required" and "malformed object name" in err and "HEAD" in err
            check(f"git {sub} --{name} value is {arg}", want in err or last_default, err[:200])


def probe_git(repo, args):
    try:
        return real(["git", *args], repo, timeout=5).stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return ""


def abbreviations(tmp):
    d = tempfile.mkdtemp(dir=tmp)
    cases = [("sort", "--compress-prog=x", False), ("sort", "--s", True), ("sort", "--st", False),
             ("tar", "--to-com=x", False), ("tar", "--use-comp=x", False), ("ls", "--col", False),
             ("ls", "--d", True), ("grep", "--in", True), ("make", "--eva=x", False), ("tail", "--s", True)]
    for tool, arg, ambiguous in cases:
        e = explain([tool, arg], pack_file("ci" if tool == "tar" else "dev-write", tmp))
        ours = e.get("why") == "ambiguous abbreviation"
        err = real([tool, arg], d, timeout=10).stderr.decode(errors="replace")
        theirs = "ambiguous" in err
        check(f"{tool} {arg} ambiguity", ours == ambiguous and theirs == ambiguous,
              f"ours ambiguous={ours}, {tool}: {err[:160]!r}")


BASE = """policy_schema_version: csc.policy.v0.1
name: selftest
allow_commands: [git, ls, sort, mytool, sed]
allowed_effect_types: [observe]
allowed_risk_classes: [low]
max_timeout_sec: 30
network: deny
allow_secret_refs: false
allowed_cwd_prefixes: [/workspace]
allowed_read_prefixes: [/workspace]
"""


def self_tests(tmp):
    """examples, warrant policy test, and tools: grammars in a policy."""
    for pack in ("default", "dev-write", "ci"):
        p = subprocess.run([WARRANT, "policy", "test", pack], capture_output=True, text=True, timeout=60)
        rep = json.loads(p.stdout) if p.returncode in (0, 1) else {}
        check(f"policy test {pack}", p.returncode == 0 and rep["examples"] >= 15 and not rep["failed"] and
              rep["commands_without_grammar"] == [], p.stdout[:300] + p.stderr[:300])
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write(BASE + "examples:\n  deny: [[git, grep, push]]\n  allow: [[ls, -l]]\n")
    p = subprocess.run([WARRANT, "policy", "test", bad], capture_output=True, text=True, timeout=60)
    check("policy test: failing example exits 1", p.returncode == 1, p.stderr)
    check("policy test: the diff names argv, expected and got",
          'example ["git","grep","push"]: expected deny, got allow ALLOW' in p.stderr, p.stderr)
    check("policy test: passing examples are not reported", '"ls"' not in p.stderr, p.stderr)
    check("policy test: tools without grammar are named", "2 allowed command(s) have no argument grammar" in p.stderr
          and '"sed"' in p.stdout, p.stdout + p.stderr)
    c = os.path.join(tmp, "c.json")
    with open(c, "w") as f:
        json.dump(contract(["ls"]), f)
    for args in (["check", "--policy", bad, c], ["validate", "policy", bad], ["run", "--policy", bad, c]):
        p = subprocess.run([WARRANT, *args], capture_output=True, text=True, timeout=60)
        check(f"warrant {args[0]} refuses a policy whose examples fail", p.returncode != 0 and
              "example(s) fail" in p.stderr, f"rc={p.returncode} {p.stderr[:300]}")
    warrantd = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(WARRANT))), "server", "warrantd")
    if os.path.exists(warrantd):
        st = os.path.join(tmp, "state")
        os.makedirs(st)
        p = subprocess.run([warrantd, "--stdio", "--policy", bad, "--state-dir", st, "--agent-id", "t"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        check("warrantd refuses a policy whose examples fail", p.returncode != 0 and "example(s) fail" in p.stderr,
              f"rc={p.returncode} {p.stderr[:300]}")
    # a policy's own grammar: a new tool, and an override of a bundled one
    own = os.path.join(tmp, "own.yaml")
    with open(own, "w") as f:
        f.write(BASE + """tools:
  mytool:
    options:
      - {short: v, long: verbose}
      - {long: run, arg: required, effect: indirect_exec}
  ls:
    unknown: observe
examples:
  allow: [[mytool, --verb, x], [ls, --some-future-option], [sed, -n, p, f]]
  deny: [[mytool, --ru=sh], [mytool, -q], [sed, -n, "1e id", f]]
""")
    p = subprocess.run([WARRANT, "policy", "test", own], capture_output=True, text=True, timeout=60)
    check("tools: add and override grammars; sed keeps the CSC rules", p.returncode == 0, p.stdout + p.stderr)
    broken = os.path.join(tmp, "broken.yaml")
    with open(broken, "w") as f:
        f.write(BASE + "tools:\n  mytool:\n    options: [{long: x, arg: sometimes}]\n")
    p = subprocess.run([WARRANT, "validate", "policy", broken], capture_output=True, text=True, timeout=60)
    check("a malformed grammar is refused with its pointer", p.returncode == 1 and "/tools/mytool" in p.stderr,
          p.stderr)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        # `warrant check` keeps its policy-examples record in the state dir:
        # never the user's own (~/.local/state/warrant) from a test.
        os.environ["WARRANT_STATE_DIR"] = os.path.join(tmp, "cli-state")
        self_tests(tmp)
        attacks(tmp)
        arity(tmp)
        git_arity(tmp)
        abbreviations(tmp)
    for f in failures:
        print("FAIL", f)
    print(f"{ran} checks, {len(failures)} failed")
    sys.exit(1 if failures else 0)


main()
