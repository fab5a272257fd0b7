"""What a user sees when ``vigie`` fails: one line ``vigie: error: <where>: <what>`` on stderr
and the exit code of the error's family (README, "The CLI"), whichever command failed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from producers.agent.parse.syslog import MalformedMessage
from runtime.errors import (
    INTERNAL_ERROR,
    CannotWrite,
    ConfigurationError,
    DataError,
    InputMissing,
    PermissionDenied,
    ServiceUnavailable,
    UsageError,
    VigieError,
    explain,
)
from vigie.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``vigie argv`` run through ``main``."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    code = exited.value.code
    assert isinstance(code, int)
    return code, out, err


def error_line(err: str) -> str:
    """The one ``vigie: error:`` line of stderr (log lines may precede it)."""
    lines = [line for line in err.splitlines() if line.startswith("vigie: error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, and restored after the test: ``--config`` and ``--debug`` set them."""
    for name in ("VIGIE_CONFIG", "VIGIE_LOG_LEVEL", "VIGIE_ES_URL"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_the_families_have_the_sysexits_codes() -> None:
    assert [f.exit_code for f in (UsageError, DataError, InputMissing, ServiceUnavailable,
                                  CannotWrite, PermissionDenied, ConfigurationError)] == [
        64, 65, 66, 69, 73, 77, 78]
    assert INTERNAL_ERROR == 70


def test_an_error_is_one_line_with_its_source_and_keeps_the_rest_as_details() -> None:
    error = DataError("2 validation errors\nagent_id\n  Field required", source="a.jsonl:3")
    assert str(error) == "a.jsonl:3: 2 validation errors"
    assert error.details == "agent_id\n  Field required"
    assert str(DataError("no source")) == "no source"


def test_parse_errors_stay_value_errors_for_their_callers() -> None:
    error = MalformedMessage("bad_pri", "PRI 999 > 191")
    assert isinstance(error, ValueError) and isinstance(error, DataError)
    assert (error.reason, str(error)) == ("bad_pri", "bad_pri: PRI 999 > 191")


def test_missing_and_forbidden_files_are_explained() -> None:
    missing = explain(FileNotFoundError(2, "No such file or directory", "/x/y.ndjson"))
    assert isinstance(missing, InputMissing)
    assert str(missing) == "/x/y.ndjson: No such file or directory"
    assert isinstance(explain(PermissionError(13, "Permission denied", "/etc/k")),
                      PermissionDenied)
    assert explain(KeyError("bug")) is None


def test_missing_settings_file_is_a_configuration_error(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    missing = tmp_path / "vigie.yaml"
    code, _, err = run(capsys, "incidents", "list", "--config", str(missing))
    assert code == 78
    assert error_line(err) == f"vigie: error: {missing}: no such settings file"


def test_invalid_settings_file_names_the_field(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    config = tmp_path / "vigie.yaml"
    config.write_text("sink_batch_max_docs: many\n")
    code, _, err = run(capsys, "incidents", "list", "--config", str(config))
    assert code == 78
    assert error_line(err).startswith(f"vigie: error: {config}: invalid settings: "
                                      "sink_batch_max_docs: ")


def test_missing_agent_configuration_is_a_configuration_error(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "agent", "status", "--config", str(tmp_path / "agent.yaml"))
    assert code == 78
    assert str(tmp_path / "agent.yaml") in error_line(err)


def test_bad_date_is_a_usage_error_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "report", "--from", "2026-13-45", "--to", "2026-02-01")
    assert code == 64
    assert error_line(err) == "vigie: error: --from: not a date: '2026-13-45' (YYYY-MM-DD)"
    assert out == ""


def test_bad_since_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "incidents", "list", "--since", "yesterday")
    assert code == 64
    assert error_line(err).startswith("vigie: error: --since: ")


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "frobnicate")
    assert code == 64
    assert err == "vigie: error: No such command 'frobnicate'. (see 'vigie --help')\n"


def test_unknown_option_of_a_subcommand_names_its_help(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    code, _, err = run(capsys, "agent", "ingest", "--frob")
    assert code == 64
    assert "(see 'vigie agent ingest --help')" in error_line(err)


def test_elasticsearch_unreachable_is_a_service_error(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("VIGIE_ES_URL", url)
    code, out, err = run(capsys, "incidents", "list")
    assert code == 69
    line = error_line(err)
    assert line.startswith(f"vigie: error: {url}: Elasticsearch does not answer (")
    assert "Connection refused" in line
    assert out == ""


def test_malformed_agents_registry_is_a_data_error(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    registry = tmp_path / "agents.jsonl"
    registry.write_text('{"agent_id": "x"}\n')
    code, _, err = run(capsys, "agents", "list", "--file", str(registry))
    assert code == 65
    assert error_line(err).startswith(f"vigie: error: {registry}:1: ")
    # import reads the file before it contacts Kafka: the same error, nothing written
    code, _, err = run(capsys, "agents", "import", str(registry))
    assert code == 65
    assert error_line(err).startswith(f"vigie: error: {registry}:1: ")


def test_agents_registry_rules_on_the_command_line(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    """One key, one agent; revocations are permanent; each refusal names why."""
    registry = tmp_path / "agents.jsonl"
    key = tmp_path / "agent.key"
    code, out, _ = run(capsys, "agent", "enroll", "--out", str(key))
    assert code == 0
    public = out.split("public key: ")[1].split()[0]

    def add(agent_id: str) -> tuple[str, ...]:
        return ("agents", "add", "--agent-id", agent_id, "--establishment", "750712184",
                "--public-key", public, "--file", str(registry), "--by", "alice")

    assert run(capsys, *add("chu-01"))[0] == 0
    code, _, err = run(capsys, *add("chu-01"))
    assert code == 65
    assert error_line(err) == (f"vigie: error: {registry}: agent chu-01 is already enrolled "
                               "(establishment 750712184)")
    code, _, err = run(capsys, *add("chu-99"))
    assert (code, error_line(err)) == (
        65, f"vigie: error: {registry}: this public key is already enrolled as agent chu-01 "
        "(establishment 750712184); one key, one agent")
    code, _, err = run(capsys, "agents", "revoke", "chu-02", "--reason", "x",
                       "--file", str(registry))
    assert (code, error_line(err)) == (65, f"vigie: error: {registry}: no agent chu-02")
    code, _, _ = run(capsys, "agents", "revoke", "chu-01", "--reason", "laptop stolen",
                     "--file", str(registry), "--by", "bob")
    assert code == 0
    code, _, err = run(capsys, *add("chu-01"))
    assert code == 65
    assert "agent chu-01 was revoked on " in error_line(err)
    assert "(laptop stolen); revocations are permanent" in error_line(err)
    code, _, err = run(capsys, *add("chu-02"))
    assert code == 65
    assert "this public key was revoked with agent chu-01" in error_line(err)
    code, out, _ = run(capsys, "agents", "list", "--file", str(registry))
    assert code == 0
    assert out.startswith("chu-01\t750712184\trevoked\t")
    assert out.rstrip("\n").endswith("\tlaptop stolen")


def test_overwriting_an_agent_key_is_refused(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    key = tmp_path / "agent.key"
    key.write_text("precious")
    code, _, err = run(capsys, "agent", "enroll", "--out", str(key))
    assert code == 73
    assert error_line(err) == (f"vigie: error: {key}: already exists; refusing to overwrite "
                               "an agent key")
    assert key.read_text() == "precious"


def test_missing_input_file_is_an_input_error(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    missing = tmp_path / "objects.ndjson"
    code, _, err = run(capsys, "kibana", "import", "--url", "http://127.0.0.1:1",
                       "--file", str(missing))
    assert code == 66
    assert error_line(err) == f"vigie: error: {missing}: No such file or directory"


def test_a_bug_is_one_line_and_says_how_to_see_the_traceback(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    import schemas.export

    def broken(directory: Path) -> list[Path]:
        raise KeyError("winlog")

    monkeypatch.setattr(schemas.export, "export_json_schemas", broken)
    code, _, err = run(capsys, "schemas", "export", str(tmp_path))
    assert code == 70
    assert err.splitlines() == [
        "vigie: error: unexpected KeyError: 'winlog'",
        "vigie: run with --debug (or VIGIE_LOG_LEVEL=DEBUG) for the traceback"]
    code, _, err = run(capsys, "--debug", "schemas", "export", str(tmp_path))
    assert code == 70
    assert "Traceback (most recent call last)" in err and "in broken" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from vigie import __version__

    assert run(capsys, "--version")[:2] == (0, f"vigie {__version__}\n")


def test_details_are_printed_under_the_error_line(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from deploy.local import stack

    def failing(timeout: float) -> list[object]:
        raise stack.StackError("kafka exited during start-up. Read /x/server.log\n"
                               "--- from /x/server.log ---\nERROR bad log.dirs")

    monkeypatch.setattr(stack, "up", failing)
    code, _, err = run(capsys, "stack", "up")
    assert code == 69
    assert err.splitlines()[-3:] == [
        "vigie: error: kafka exited during start-up. Read /x/server.log",
        "  --- from /x/server.log ---", "  ERROR bad log.dirs"]


def test_errors_are_vigie_errors() -> None:
    """Every exception class a command can raise on purpose descends from the one root."""
    from deploy.kibana.importer import KibanaImportError, KibanaUnavailable
    from deploy.local.errors import StackError
    from processors.detection.compiler import UnsupportedRule
    from processors.validate import Refused
    from producers.agent.config import ConfigError
    from producers.signing import AgentKeyError
    from runtime.agents_registry import AgentsRegistryError
    from runtime.registry import RegistryError
    from sinks.routing import Unroutable
    from soc.incidents import AmbiguousId

    for cls in (KibanaImportError, KibanaUnavailable, StackError, UnsupportedRule, Refused,
                ConfigError, AgentKeyError, AgentsRegistryError, RegistryError, Unroutable,
                AmbiguousId):
        assert issubclass(cls, VigieError), cls
    assert issubclass(AmbiguousId, LookupError) and issubclass(UnsupportedRule, ValueError)
    assert KibanaUnavailable.exit_code == 69 and KibanaImportError.exit_code == 65
