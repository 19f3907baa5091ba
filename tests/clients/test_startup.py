#!/usr/bin/env python3
"""What `warrant` does at start-up (docs/performance.md, "The CLI's start-up"):
only warrant-archive links libarchive and the archive commands reach it; a
libcrypto configuration named by OPENSSL_CONF is never read; a policy file's
examples run once per policy and build (the cache's attacks: tests/policy)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

WARRANT, ARCHIVE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
del sys.argv[1:3]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "receipts"))
from truerun import write_truerun  # noqa: E402  (policy allowing /bin/true, its contract)


def needed(path):
    out = subprocess.run(["readelf", "-dW", path], capture_output=True, text=True, check=True).stdout
    return [ln.split("[", 1)[1].rstrip("]") for ln in out.splitlines() if "(NEEDED)" in ln]


def run(*argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw)


class Startup(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wr-startup-")
        os.chmod(self.tmp, 0o755)  # the sandbox runs as an unprivileged user

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_only_warrant_archive_links_libarchive(self):
        if not shutil.which("readelf"):
            self.skipTest("readelf (binutils) not installed")
        self.assertFalse([n for n in needed(WARRANT) if "archive" in n], needed(WARRANT))
        self.assertTrue([n for n in needed(ARCHIVE) if n.startswith("libarchive.")], needed(ARCHIVE))

    def test_archive_commands_reach_warrant_archive(self):
        for argv, msg in ((["capsule"], "usage: warrant capsule"), (["reproduce"], "usage: warrant reproduce"),
                          (["export"], "usage: warrant export"), (["verify", "bundle"], "usage: warrant verify bundle")):
            r = run(WARRANT, *argv)
            self.assertEqual(r.returncode, 2, argv)
            self.assertIn(msg, r.stderr, argv)
        # other verify kinds stay in warrant itself
        r = run(WARRANT, "verify", "receipt")
        self.assertIn("--pubkey PUB is required", r.stderr)
        # warrant-archive runs nothing else
        r = run(ARCHIVE, "run", "--policy", "x", "y")
        self.assertEqual(r.returncode, 2)
        self.assertIn("warrant-archive runs the archive commands", r.stderr)

    def test_openssl_conf_is_never_read(self):
        # A FIFO without a writer: opening it to read blocks, so a CLI that
        # reads the file hangs into the timeout instead of finishing.
        conf = os.path.join(self.tmp, "openssl.cnf")
        os.mkfifo(conf)
        args = write_truerun(self.tmp, "startup")
        env = dict(os.environ, OPENSSL_CONF=conf)
        for argv in (["check", "--policy", args[1], args[-1]], ["keygen", "--out", os.path.join(self.tmp, "k")]):
            try:
                r = subprocess.run([WARRANT] + argv, capture_output=True, text=True, timeout=10, env=env)
            except subprocess.TimeoutExpired:
                self.fail("warrant %s opened OPENSSL_CONF" % argv[0])
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_policy_examples_cache(self):
        """`warrant run --policy FILE` runs a policy's examples once per policy and build: a pass is recorded
        owner-only in the state dir; an edited policy whose examples fail is refused although a record exists."""
        args = write_truerun(self.tmp, "cache")
        policy, state = args[1], args[3]
        text = open(policy).read()
        failing = text + "examples:\n  deny: [[\"true\"]]\n"  # true is allowed: the example fails
        passing = text + "examples:\n  allow: [[\"true\"]]\n"
        for body, ok in ((failing, False), (passing, True), (passing, True), (failing, False)):
            with open(policy, "w") as f:
                f.write(body)
            r = run(WARRANT, "run", "--quiet", *args)
            if ok:
                if "could not start" in r.stderr:
                    self.skipTest("no sandbox on this host: " + r.stderr.strip().splitlines()[-1])
                self.assertEqual(r.returncode, 0, r.stderr)
            else:
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("example(s) fail", r.stderr)
        cache = os.path.join(state, "policy-examples")
        self.assertEqual(os.stat(cache).st_mode & 0o777, 0o700)
        records = os.listdir(cache)
        self.assertEqual(len(records), 1, records)  # the passing policy only
        self.assertEqual(os.stat(os.path.join(cache, records[0])).st_mode & 0o777, 0o600)

    def test_policy_examples_record_is_bound_to_the_build(self):
        """A record written by one build of warrant is not trusted by another (its GNU build id differs): the
        examples run again and the record is rewritten, each build's in turn; a build keeps its own record."""
        if not shutil.which("readelf"):
            self.skipTest("readelf (binutils) not installed")
        args = write_truerun(self.tmp, "build")
        with open(args[1], "a") as f:
            f.write("examples:\n  allow: [[\"true\"]]\n")
        notes = run("readelf", "-n", WARRANT).stdout
        ids = [ln.split(":", 1)[1].strip() for ln in notes.splitlines() if "Build ID:" in ln]
        if not ids:
            self.skipTest("warrant has no GNU build id: nothing is cached")
        build_id = bytes.fromhex(ids[0])
        with open(WARRANT, "rb") as f:
            image = f.read()
        self.assertEqual(image.count(build_id), 1)
        # The same program with another build id, beside copies of the helpers it runs (found next to it).
        other = os.path.join(self.tmp, "other")
        os.mkdir(other)
        os.chmod(other, 0o755)
        other_warrant = os.path.join(other, "warrant")
        with open(other_warrant, "wb") as f:
            f.write(image.replace(build_id, bytes([build_id[0] ^ 1]) + build_id[1:]))
        os.chmod(other_warrant, 0o755)
        helpers = os.path.join(os.path.dirname(WARRANT), "..", "executor")
        for helper in ("warrant-init", "warrant-launch"):
            shutil.copy(os.path.join(helpers, helper), other)
        cache = os.path.join(args[3], "policy-examples")
        inodes = []
        for warrant in (WARRANT, WARRANT, other_warrant, other_warrant, WARRANT):
            r = run(warrant, "run", "--quiet", *args)
            if "could not start" in r.stderr:
                self.skipTest("no sandbox on this host: " + r.stderr.strip().splitlines()[-1])
            self.assertEqual(r.returncode, 0, r.stderr)
            records = os.listdir(cache)
            self.assertEqual(len(records), 1, records)
            inodes.append(os.stat(os.path.join(cache, records[0])).st_ino)
        self.assertEqual(inodes[0], inodes[1], "a build did not keep its own record")
        self.assertNotEqual(inodes[1], inodes[2], "another build trusted the record")
        self.assertEqual(inodes[2], inodes[3], "a build did not keep its own record")
        self.assertNotEqual(inodes[3], inodes[4], "another build trusted the record")


if __name__ == "__main__":
    result = unittest.main(exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.skipped and len(result.skipped) == result.testsRun else 0)
