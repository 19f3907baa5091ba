#!/usr/bin/env python3
"""The man pages are the help: `warrant --help`, `warrant help TOPIC` and
`warrantd --help` come from them and name every command and option."""
import os
import re
import subprocess
import sys
import unittest

WARRANT, WARRANTD, MANDIR = sys.argv[1], sys.argv[2], sys.argv[3]
del sys.argv[1:4]


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


class Help(unittest.TestCase):
    def test_every_command_documented_and_dispatched(self):
        r = run(WARRANT, '--help')
        self.assertEqual(r.returncode, 0)
        self.assertNotIn('(undocumented)', r.stdout)
        topics = re.findall(r'^  warrant (\w[\w-]*)', r.stdout, re.M)
        self.assertGreaterEqual(len(topics), 10)
        for t in topics:
            h = run(WARRANT, 'help', t)
            self.assertEqual(h.returncode, 0, t)
            self.assertTrue(h.stdout.startswith('warrant ' + t), h.stdout)
            # documented means dispatched too: no "unknown command"
            d = run(WARRANT, t, '--no-such-option-xyz')
            self.assertNotIn('unknown command', d.stderr, t)

    def test_unknown_topic_is_usage_error(self):
        r = run(WARRANT, 'help', 'no-such-topic')
        self.assertEqual(r.returncode, 2)
        self.assertIn("no help topic 'no-such-topic'", r.stderr)

    def test_warrantd_options_documented(self):
        r = run(WARRANTD, '--help')
        self.assertEqual(r.returncode, 0)
        self.assertNotIn('(undocumented)', r.stdout)
        self.assertIn('--listen HOST:PORT', r.stdout)

    def test_man_pages_render(self):
        pages = ['warrant.1', 'warrantd.8', 'warrant-policy.5']
        if not all(os.path.exists(os.path.join(MANDIR, p)) for p in pages):
            self.skipTest('scdoc not installed: man pages not built')
        for p in pages:
            roff = open(os.path.join(MANDIR, p)).read()
            self.assertIn('.SH NAME', roff)
            self.assertIn('.SH SEE ALSO', roff)


if __name__ == '__main__':
    result = unittest.main(exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.skipped and len(result.skipped) == result.testsRun else 0)
