"""module.xml is well formed and consistent with the repository and with what IPM reads.

What IPM accepts was read in intersystems/ipm (v0.10.x):
- src/cls/IPM/StudioDocument/Module.cls: any `Module/*[@Name]` element becomes a resource whose
  processor is %IPM.ResourceProcessor.<element name> (FileCopy, UnitTest, ...);
- ResourceProcessor/FileCopy.cls: attributes Name, InstallDirectory (alias Target, Dest), Overlay,
  CSPApplication, Defer; the Clean phase deletes the target, a directory target whole;
- ResourceProcessor/Test.cls (UnitTest): Phase, Package, Class, ManagerClass, Format,
  ExportFlags; tests load from <root><Name> and run from its <Package as folders>;
- ResourceProcessor/Default/Package.cls + Document.cls: a .PKG loads from
  <SourcesRoot>/cls/<Package as folders>/ (falling back to <SourcesRoot>/<...>);
- Storage/InvokeReference.cls: Class, Method, Phase (default Configure), When (default After),
  CustomPhase, CheckStatus, Arg elements; a %Status result is checked;
- DataType/PhaseName.cls: the phase names; Lifecycle/Module.cls: install runs Configure after
  Activate, uninstall runs Unconfigure before the resources are cleaned;
- Storage/SystemRequirements.cls: Version, Interoperability, Health, IPMVersion, PythonVersion;
- Storage/Module.cls: %Evaluate returns a text unchanged unless it contains "{";
- Lifecycle/Base.cls: requirements.txt beside module.xml is pip-installed into <mgr>/python.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Set

import pytest
from test_objectscript_parse import class_name, members

import mirror_vip

ROOT = Path(__file__).resolve().parent.parent
MODULE_XML = ROOT / "module.xml"

MODULE_ELEMENTS = {
    "Name",
    "Version",
    "ExternalName",
    "Description",
    "Keywords",
    "Author",
    "Packaging",
    "SourcesRoot",
    "Resource",
    "Dependencies",
    "Invoke",
    "SystemRequirements",
    "AfterInstallMessage",
    "FileCopy",
    "UnitTest",
}
ATTRIBUTES: Dict[str, Set[str]] = {
    "Resource": {"Name", "Directory", "Preload", "Scope", "Deploy", "Generated"},
    "FileCopy": {
        "Name",
        "Target",
        "InstallDirectory",
        "Dest",
        "Overlay",
        "CSPApplication",
        "Defer",
    },
    "UnitTest": {"Name", "Package", "Class", "Phase", "ManagerClass", "Format", "ExportFlags"},
    "Invoke": {"Class", "Method", "Phase", "When", "CustomPhase", "CheckStatus"},
    "SystemRequirements": {"Version", "Interoperability", "Health", "IPMVersion", "PythonVersion"},
}
PHASES = {
    "Clean", "Initialize", "Reload", "*", "Validate", "ExportData", "Compile", "Activate",
    "Document", "MakeDeployed", "Test", "Package", "Verify", "Publish", "Configure",
    "Unconfigure", "ApplyUpdateSteps",
}  # fmt: skip
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


@pytest.fixture(scope="module")
def module() -> ET.Element:
    root = ET.parse(MODULE_XML).getroot()  # noqa: S314 - our own manifest
    assert root.tag == "Export"
    document = root.find("Document")
    assert document is not None
    found = document.find("Module")
    assert found is not None
    assert document.get("name") == f"{text(found, 'Name')}.ZPM"
    return found


def text(module: ET.Element, tag: str) -> str:
    element = module.find(tag)
    assert element is not None and element.text, f"<{tag}> is missing or empty"
    return element.text.strip()


def classes_in(folder: Path) -> Dict[str, Path]:
    return {class_name(p.read_text(encoding="utf-8")): p for p in sorted(folder.rglob("*.cls"))}


def src_class(name: str) -> Path:
    path = ROOT / "src" / "cls" / Path(*name.split(".")).with_suffix(".cls")
    assert path.is_file(), f"{name} is not in src/cls"
    return path


def test_only_elements_and_attributes_ipm_reads(module: ET.Element) -> None:
    for element in module:
        assert element.tag in MODULE_ELEMENTS, element.tag
        allowed = ATTRIBUTES.get(element.tag, set())
        assert set(element.attrib) <= allowed, (element.tag, set(element.attrib) - allowed)


def test_identity(module: ET.Element) -> None:
    assert text(module, "Name") == "mirror-vip"
    assert SEMVER.match(text(module, "Version"))
    assert text(module, "Version") == mirror_vip.__version__
    assert text(module, "Packaging") == "module"
    assert len(text(module, "Description")) > 40
    assert "mirror" in text(module, "Keywords").split()
    author = module.find("Author")
    assert author is not None and author.findtext("License")


def test_every_class_under_src_is_a_declared_package(module: ET.Element) -> None:
    assert text(module, "SourcesRoot") == "src"
    packages = [r.get("Name", "")[: -len(".PKG")] for r in module.findall("Resource")]
    assert packages == ["MirrorVip"]
    declared = classes_in(ROOT / "src" / "cls" / "MirrorVip")
    assert {"MirrorVip.Config", "MirrorVip.Admin", "MirrorVip.Hooks", "MirrorVip.Task"} <= set(
        declared
    )
    for name in classes_in(ROOT / "src"):
        assert name.rsplit(".", 1)[0] in packages, f"{name} is in no <Resource>"


def test_invokes_name_class_methods_returning_status(module: ET.Element) -> None:
    invokes = module.findall("Invoke")
    assert sorted(i.get("Phase", "Configure") for i in invokes) == ["Configure", "Unconfigure"]
    for invoke in invokes:
        assert invoke.get("Phase", "Configure") in PHASES
        method = members(src_class(invoke.get("Class", "")).read_text(encoding="utf-8")).get(
            invoke.get("Method", "")
        )
        assert method is not None, f"{invoke.get('Class')}:{invoke.get('Method')} does not exist"
        assert method.kind == "ClassMethod" and method.returns == "%Status"
        args = [a.text for a in invoke.findall("Arg")]
        assert method.required <= len(args) <= len(method.params)
        assert args == ["${namespace}"]


def test_invokes_check_their_status(module: ET.Element) -> None:
    """Before IPM 0.10.5 an Invoke without CheckStatus="true" is run with `Do $ClassMethod(...)`
    and its %Status is thrown away: a failed Configure still ends in SUCCESS
    (Storage/InvokeReference.cls, v0.9.0 to v0.10.4: CheckStatus InitialExpression 0;
    v0.10.5 checks a %Status method by default and still honours CheckStatus="true")."""
    for invoke in module.findall("Invoke"):
        assert invoke.get("CheckStatus") == "true", invoke.get("Method")


def test_unit_tests_exist_where_ipm_looks(module: ET.Element) -> None:
    (unit,) = module.findall("UnitTest")
    assert unit.get("Phase") in ("test", "verify", "test,verify")
    folder = ROOT / unit.get("Name", "").strip("/") / Path(*unit.get("Package", "").split("."))
    tests = classes_in(folder)
    assert {"ConfigTest", "InstallerTest", "StatusTest"} <= {n.rsplit(".", 1)[1] for n in tests}
    for name, path in tests.items():
        source = path.read_text(encoding="utf-8")
        assert name.startswith(f"{unit.get('Package')}.")
        if not name.endswith("Test"):  # a helper the tests use (a scratch class): no tests in it
            assert not any(m.startswith("Test") for m in members(source)), name
            continue
        assert re.search(r"^Class \S+ Extends %UnitTest\.TestCase", source, re.MULTILINE)
        assert any(m.startswith("Test") for m in members(source))


def test_python_package_is_copied_into_its_own_folder(module: ET.Element) -> None:
    (copy,) = module.findall("FileCopy")
    source = copy.get("Name", "")
    assert source.endswith("/") and (ROOT / source / "__init__.py").is_file()
    assert (ROOT / source / "bridge.py").is_file()
    # IPM deletes a directory target whole on uninstall: never mgr/python itself
    assert copy.get("Target") == "${mgrdir}python/mirror_vip/"


def test_requirements_txt_installs_boto3() -> None:
    requirements = ROOT / "requirements.txt"
    names: List[str] = [
        re.split(r"[<>=!~;\[ ]", line.strip())[0].lower()
        for line in requirements.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "boto3" in names


def test_system_requirements(module: ET.Element) -> None:
    requirements = module.find("SystemRequirements")
    assert requirements is not None
    assert requirements.get("Version") == ">=2022.1"
    assert requirements.get("PythonVersion") == ">=3.9"


def test_after_install_message_says_the_next_two_steps(module: ET.Element) -> None:
    message = text(module, "AfterInstallMessage")
    assert "##class(MirrorVip.Config).Set(" in message
    assert "##class(MirrorVip.Admin).Doctor()" in message
    assert "{" not in message  # shown literally: IPM only evaluates texts containing "{"
