"""What an uninstall in the wrong namespace must not do, checked on the tree-sitter parse.

IPM's FileCopy copies python/mirror_vip/ into <mgr>/python/mirror_vip in the Activate phase,
before the Configure Invoke runs, and deletes that folder whole in the Clean phase
(intersystems/ipm src/cls/IPM/ResourceProcessor/FileCopy.cls, OnBeforePhase and OnPhase).
Uninstall runs Unconfigure first and stops when it fails (src/cls/IPM/Lifecycle/Module.cls,
%Clean: `set tSC = ..Unconfigure(.pParams)  if $$$ISERR(tSC) { quit }`); with
CheckStatus="true" the Invoke's %Status is that result (src/cls/IPM/Storage/InvokeReference.cls).

So after a second install in namespace B was refused (its Activate had already copied the
files), `zpm "uninstall mirror-vip"` in B would delete the Python package the install in A runs,
and A's next failover claim could not import mirror_vip. Unconfigure must fail, before IPM gets
to Clean, when a hook calls another namespace: the hook is left as it is and the uninstall stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

from test_objectscript_parse import needs_grammar, parse
from tree_sitter import Node

ROOT = Path(__file__).resolve().parent.parent
INSTALLER = ROOT / "src/cls/MirrorVip/Installer.cls"


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _text(node: Node) -> str:
    return node.text.decode("utf-8") if node.text is not None else ""


def other_namespace_branch(text: str, method: str) -> Optional[str]:
    """The block of `if ..OtherNamespace(...) { ... }` in `method`, or None."""
    for node in _walk(parse(text, "class").root_node):
        if node.type != "method_definition" or _text(node.children[0]) != method:
            continue
        for branch in _walk(node):
            if branch.type == "command_if" and "..OtherNamespace(" in _text(branch):
                body = _text(branch)
                return body[body.index("{") : body.index("}") + 1]
    return None


@needs_grammar
def test_removing_a_hook_that_calls_another_namespace_fails() -> None:
    branch = other_namespace_branch(INSTALLER.read_text(encoding="utf-8"), "RemoveFrom")
    assert branch is not None, "RemoveFrom no longer checks the hook's namespace"
    assert "$$$ThrowStatus(" in branch or "$$$ERROR(" in branch, branch
    # the line says why nothing was uninstalled and how to get out
    assert "python" in branch and "Unconfigure(" in branch, branch


@needs_grammar
def test_the_branch_reader_reads_a_branch() -> None:
    """A check that passes on anything proves nothing."""
    text = (
        "Class A.B\n{\n\nClassMethod RemoveFrom(s, n) As %Status\n{\n"
        '    if ..OtherNamespace(s, n) {\n        write "left"\n    }\n    quit 1\n}\n\n}\n'
    )
    assert other_namespace_branch(text, "RemoveFrom") == '{\n        write "left"\n    }'
    assert other_namespace_branch(text, "Other") is None


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def test_the_runbook_says_why_such_an_uninstall_fails_and_the_way_out() -> None:
    """An operator meets this failure in the middle of `zpm "uninstall mirror-vip"`: the runbook's
    one-namespace paragraph and its troubleshooting table quote it, say it is on purpose (the
    other namespace's failover claim imports <mgr>/python/mirror_vip) and give both ways out."""
    runbook = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    installer = INSTALLER.read_text(encoding="utf-8")
    assert "nothing is uninstalled here" in installer  # the words the operator sees
    install = _section(runbook, "## 5. Install mirror-vip")
    paragraph = install[install.index("**Uninstall in the wrong namespace") :].split("\n\n")[0]
    rows = [r for r in _section(runbook, "## 14. Troubleshooting").splitlines()
            if r.startswith("| Uninstall:")]  # fmt: skip
    assert rows, "no troubleshooting row for the refused uninstall"
    for text in (" ".join(paragraph.split()), rows[0]):  # the paragraph's lines joined
        assert "nothing is uninstalled here" in text
        assert "/python/mirror_vip" in text
        assert 'Unconfigure("OLD")' in text and "uninstall" in text.lower()
