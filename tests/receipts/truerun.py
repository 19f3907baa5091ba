"""Shared by the receipts tests that drive `warrant run`: a workspace, a
policy allowing only /bin/true in it, and a contract running /bin/true."""
import json
import os


def write_truerun(tmp, name, risk="low", mode="policy_only", approver_pem=None):
    """Creates tmp/ws, tmp/policy.yaml and tmp/contract.json; returns the
    `warrant run` arguments after the command name, for state dir tmp/state."""
    ws = os.path.join(tmp, "ws")
    os.mkdir(ws)
    os.chmod(ws, 0o755)  # the sandbox runs as an unprivileged user
    approvers = ""
    if approver_pem:
        approvers = ("approvers:\n  - identity: alice@example.com\n    public_key: %s\n"
                     "    may_approve: {risk_classes: [%s], effect_types: [observe]}\n" % (json.dumps(approver_pem), risk))
    with open(os.path.join(tmp, "policy.yaml"), "w") as f:
        f.write("""\
policy_schema_version: csc.policy.v0.1
name: %s
allow_commands: ["true"]
deny_argv_prefixes: []
allowed_effect_types: [observe]
manual_approval_for_classified_effect_types: []
allowed_risk_classes: [%s]
max_timeout_sec: 10
network: deny
allow_secret_refs: false
require_write_paths_empty: true
allowed_cwd_prefixes: [%s]
allowed_read_prefixes: [%s]
allowed_write_prefixes: []
%s""" % (name, risk, ws, ws, approvers))
    with open(os.path.join(tmp, "contract.json"), "w") as f:
        json.dump({"version": "csc.v0.1", "contract_id": name + "-contract", "intent": name,
                   "actor": {"agent_id": "tester", "session_id": "s-1", "initiating_user": "bob",
                             "delegation_scope": "test"},
                   "commands": [{"id": "cmd_1", "exec": {"argv": ["/bin/true"]}, "cwd": ws, "read_paths": [ws],
                                 "write_paths": [], "network": "deny", "env_allow": [], "secret_refs": [],
                                 "timeout_sec": 5, "proposed_effect_type": "observe"}],
                   "risk_class": risk, "approval_mode": mode, "justification": name}, f)
    return ["--policy", os.path.join(tmp, "policy.yaml"), "--state-dir", os.path.join(tmp, "state"),
            os.path.join(tmp, "contract.json")]
