import io

from click.testing import CliRunner

from cli.progress import LiveProgress


def test_plain_progress_prints_only_changes() -> None:
    runner = CliRunner()

    def run() -> None:
        with LiveProgress(stream=io.StringIO()) as live:
            assert live.plain
            live.update("Snapshot", 1, 4, "blocks")
            live.update("Snapshot", 1, 4, "blocks")
            live.update("Snapshot", 4, 4, "blocks")

    with runner.isolation() as (out, _err, *_):
        run()
        assert out.getvalue().decode().splitlines() == ["Snapshot: 1/4  blocks", "Snapshot: 4/4  blocks"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_draws_bars() -> None:
    stream = _Tty()
    with LiveProgress(stream=stream) as live:
        assert not live.plain
        live.update("Mutation log replay", 2, 3, "5 MiB written")
    assert "Mutation log replay" in stream.getvalue() and "2/3" in stream.getvalue()
