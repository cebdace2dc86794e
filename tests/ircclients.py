"""Real IRC clients for the IRC door's tests: weechat-headless (typed to through its fifo
plugin, read through its logger's files) and irssi (in a tmux session of its own, read
through its autolog files). Each gets its own home directory; every wait has a deadline."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from helpers import wait_for

HAVE_WEECHAT = shutil.which("weechat-headless") is not None
HAVE_IRSSI = shutil.which("irssi") is not None and shutil.which("tmux") is not None

_sockets = itertools.count(1)


class Weechat:
    """`weechat-headless --dir HOME` connected to one server, named `t` in weechat."""

    def __init__(self, home: Path, port: int, nick: str, *, autojoin: str = "#lobby",
                 fingerprint: str | None = None, sasl: tuple[str, str] | None = None
                 ) -> None:
        """`sasl`: an account and its password, to log in with SASL PLAIN."""
        self.home = home
        self.nick = nick
        home.mkdir(parents=True, exist_ok=True)
        self.fifo = home / "fifo"
        commands = [
            "/set logger.file.flush_delay 0",
            f"/set fifo.file.path {self.fifo}",
            "/set logger.file.time_format %Y-%m-%d %H:%M:%S",
            "/set irc.look.temporary_servers on",
            f"/server add t 127.0.0.1/{port}" + (" -ssl" if fingerprint else ""),
            f"/set irc.server.t.nicks {nick}",
            f"/set irc.server.t.autojoin {autojoin}",
        ]
        if fingerprint:
            commands.append(f"/set irc.server.t.ssl_fingerprint {fingerprint}")
        if sasl:
            commands += ["/set irc.server.t.sasl_mechanism plain",
                         f"/set irc.server.t.sasl_username {sasl[0]}",
                         f"/set irc.server.t.sasl_password {sasl[1]}"]
        commands.append("/connect t")
        self.proc = subprocess.Popen(
            ["weechat-headless", "--dir", str(home), "--run-command", ";".join(commands)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_for(self.fifo.exists, timeout=10, message="weechat's fifo")

    def command(self, buffer: str, text: str) -> None:
        """Type `text` in a buffer: "server" (the server buffer) or a channel or nick."""
        name = "irc.server.t" if buffer == "server" else f"irc.t.{buffer}"
        with open(self.fifo, "w", encoding="utf-8") as fifo:
            fifo.write(f"{name} *{text}\n")

    def log(self, buffer: str) -> str:
        """What weechat logged of a buffer so far ("server", "#lobby", a nick)."""
        name = "irc.server.t" if buffer == "server" else f"irc.t.{buffer}"
        path = self.home / "logs" / f"{name.lower()}.weechatlog"
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, buffer: str, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        match = wait_for(lambda: re.search(pattern, self.log(buffer), re.MULTILINE),
                         timeout=timeout,
                         message=f"{pattern!r} in weechat's {buffer} log")
        assert isinstance(match, re.Match)
        return match

    def close(self) -> None:
        if self.proc.poll() is None and self.fifo.exists():
            try:
                self.command("server", "/quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: weechat alone
            self.proc.wait(5)


class Irssi:
    """irssi in a detached tmux session on a tmux server of its own."""

    def __init__(self, home: Path, port: int | None, nick: str) -> None:
        """Connected to 127.0.0.1:`port` from the start; with None, to nothing (type a
        /connect, e.g. with TLS options irssi's command line does not have)."""
        self.home = home
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        (home / "config").write_text(
            'settings = {\n'
            f'  core = {{ real_name = "{nick}"; user_name = "{nick}"; nick = "{nick}";\n'
            '    log_timestamp = "%Y-%m-%d %H:%M:%S "; };\n'
            # irssi's own flood control would send a line every 2.2 s after the first five:
            # the server throttles (and is tested for it) elsewhere
            '  "irc/core" = { cmd_queue_speed = "10msec"; cmds_max_at_once = "100"; };\n'
            '  "fe-common/core" = {\n'
            '    autolog = "yes";\n'
            f'    autolog_path = "{self.logs}/$tag/$0.log";\n'
            '    autolog_level = "all -crap -clientcrap -ctcps";\n'
            '  };\n'
            '};\n', encoding="utf-8")
        self.socket = f"chatkit-irc-{os.getpid()}-{next(_sockets)}"
        command = ["irssi", f"--home={home}", "-n", nick]
        if port is not None:
            command += ["-c", "127.0.0.1", "-p", str(port)]
        script = f"{shlex.join(command)}; echo \"EXITED $?\"; sleep 60"
        self._tmux("new-session", "-d", "-s", "t", "-x", "120", "-y", "30", "sh", "-c",
                   script, env={**os.environ, "TERM": "screen"})
        # keys typed before irssi draws its window would be lost
        wait_for(lambda: "[(status)]" in self.screen() or "EXITED" in self.screen(),
                 timeout=15, message="irssi's status window")

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                                text=True, timeout=10, env=env)
        return result.stdout

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "t", "-l", text)
        self._tmux("send-keys", "-t", "t", "Enter")

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def log(self, target: str) -> str:
        text = ""
        for path in self.logs.rglob("*.log"):
            if path.stem.lower() == target.lower():
                text += path.read_text(encoding="utf-8", errors="replace")
        return text

    def wait_log(self, target: str, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        match = wait_for(lambda: re.search(pattern, self.log(target), re.MULTILINE),
                         timeout=timeout, message=f"{pattern!r} in irssi's {target} log "
                                                  f"(screen: {self.screen()!r})")
        assert isinstance(match, re.Match)
        return match

    def close(self) -> None:
        self.type("/quit")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "EXITED" not in self.screen():
            time.sleep(0.05)
        self._tmux("kill-server")  # this test's own tmux server only (its own socket)
