"""Secrets by content, not only by name (issue 12): a private key never ships, whatever its
name or ``include`` says; a certificate bundle inside a package is public data and ships."""

from __future__ import annotations

import json

import shipit
from shipit.project.plan import plan

from .helpers import Project, cli

CERTIFICATE = """-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUR3Nvbm1lIHB1YmxpYyBjZXJ0aWZpY2F0ZTAKBggqhkjO
-----END CERTIFICATE-----
"""
BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
PRIVATE_KEYS = {
    "rsa": f"-----BEGIN RSA PRIVATE KEY-----\n{BODY}-----END RSA PRIVATE KEY-----\n",
    "pkcs8": f"-----BEGIN PRIVATE KEY-----\n{BODY}-----END PRIVATE KEY-----\n",
    "encrypted": f"-----BEGIN ENCRYPTED PRIVATE KEY-----\n{BODY}-----END ENCRYPTED PRIVATE KEY",
    "legacy-encrypted": "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
    f"DEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n{BODY}-----END RSA PRIVATE KEY-----\n",
    "openssh": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{BODY}-----END OPENSSH PRIVATE KEY-----\n",
    "putty": "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n",
}


def _files(project: Project) -> set[str]:
    return {f for pack in plan(project.root).packs for f in pack.files}


def test_a_certificate_bundle_inside_a_package_ships(project: Project) -> None:
    project.write("{pkg}/cacert.pem", CERTIFICATE * 3)
    project.write("{pkg}/certs/root.crt", CERTIFICATE)
    assert {f"{project.name}/cacert.pem", f"{project.name}/certs/root.crt"} <= _files(project)


def test_a_private_key_never_ships_whatever_its_name_or_include_says(project: Project) -> None:
    for kind, key in PRIVATE_KEYS.items():
        project.write(f"{{pkg}}/keys/{kind}.pem", CERTIFICATE + key)  # a bundle with a key
        project.write(f"{{pkg}}/data/{kind}.txt", key)  # under a harmless name
    project.write("pyproject.toml", '[tool.shipit]\ninclude = ["*.pem", "*.txt", "keys/"]\n')
    shipped = _files(project)
    assert not {f for f in shipped if "/keys/" in f or "/data/" in f}, shipped
    the_plan = plan(project.root)
    assert len(the_plan.held_back) == 2 * len(PRIVATE_KEYS)
    assert {why for _, why in the_plan.held_back} == {"holds a private key"}


def test_the_dry_run_names_what_it_holds_back_and_why(project: Project) -> None:
    project.write("{pkg}/server.pem", PRIVATE_KEYS["rsa"])
    project.write("{pkg}/.env", "TOKEN=1\n")
    project.write("{pkg}/api.key", "k\n")
    result = cli("sync", "--dry-run", "--no-install", cwd=project.root)
    assert result.returncode == 0, result
    lines = [line for line in result.stdout.splitlines() if line.startswith("held back")]
    assert lines == [
        f"held back  {project.name}/.env: named like a secret",
        f"held back  {project.name}/api.key: named like a secret",
        f"held back  {project.name}/server.pem: holds a private key",
    ], result.stdout
    data = json.loads(cli("sync", "--dry-run", "--no-install", "--json", cwd=project.root).stdout)
    assert {(d["path"].rpartition("/")[2], d["why"]) for d in data["held_back"]} == {
        (".env", "named like a secret"),
        ("api.key", "named like a secret"),
        ("server.pem", "holds a private key"),
    }


def test_a_held_back_key_does_not_make_the_nodes_look_behind(project: Project) -> None:
    from shipit.project.discover import discover
    from shipit.project.pack import digest_on_disk

    project.write("{pkg}/server.pem", PRIVATE_KEYS["pkcs8"])
    units = {u.name: u for u in discover(shipit.config.load_config(project.root))}
    (pack,) = [p for p in plan(project.root).packs if p.name == project.name]
    assert digest_on_disk(units[project.name]) == pack.digest


def test_code_that_names_the_key_markers_ships(project: Project) -> None:
    # google-auth's parsers: the markers as constants, no key
    project.write(
        "{pkg}/crypt.py",
        """
        _PKCS1_MARKER = ("-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----")
        _PKCS8_MARKER = ("-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----")
        """,
    )
    assert f"{project.name}/crypt.py" in _files(project)
    assert plan(project.root).held_back == ()
