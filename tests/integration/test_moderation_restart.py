"""Accounts, founders, ops, bans, mutes and room settings survive a restart of a real
`chatkit serve`; `chatkit admin` works on the database offline and beside the running server
(SIGHUP applies what it changed); `--admin`, `--motd` and `chatkit history --kind
moderation` from the command line; no password on any command line or in any output."""

from __future__ import annotations

import signal
import subprocess

from helpers import JsonClient, ServeProcess, chatkit_cmd, cli_env, wait_for

PASSWORD = "correct horse"


def run(home: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(chatkit_cmd(*args), input=stdin, capture_output=True, text=True,
                          env=cli_env(home), timeout=30)


def login(port: int, nick: str, room: str | None = "lobby") -> JsonClient:
    client = JsonClient(port)
    client.send({"type": "hello", "version": 1, "nick": nick, "room": room,
                 "identify": PASSWORD})
    client.expect("welcome")
    client.expect("account")
    return client


def join(client: JsonClient, room: str) -> dict:
    answer = client.request({"type": "join", "room": room})
    if answer["type"] == "joined":
        client.expect("history_end")
    return answer


def test_everything_survives_a_restart(tmp_path) -> None:
    home, db = str(tmp_path / "home"), str(tmp_path / "chat.db")
    args = ["--no-discovery", "--db", db, "--rate-limit", "0", "--max-per-address", "0"]
    serve = ServeProcess.start(args, env_home=home)
    try:
        alice = JsonClient(serve.port, "alice")
        alice.request({"type": "register", "password": PASSWORD})
        join(alice, "dev")  # founds dev
        carol = JsonClient(serve.port, "carol")
        carol.request({"type": "register", "password": PASSWORD})
        join(carol, "dev")
        for action, extra in (("op", {"target": "carol"}), ("moderated", {"on": True}),
                              ("topic_lock", {"on": True}),
                              ("ban", {"target": "mallory", "reason": "troll"}),
                              ("mute", {"target": "carol", "duration": 3600})):
            answer = alice.request({"type": "moderate", "action": action, "room": "dev",
                                    **extra})
            assert answer["type"] == "notice", answer
        alice.close()
        carol.close()
    finally:
        assert serve.stop() == 0
    serve = ServeProcess.start(args, env_home=home)
    try:
        # the account is kept: nobody else takes the nickname
        thief = JsonClient(serve.port)
        thief.send({"type": "hello", "version": 1, "nick": "alice"})
        assert thief.expect("error")["code"] == "nick_registered"
        thief.close()
        alice = login(serve.port, "alice")
        join(alice, "dev")
        who = alice.request({"type": "who", "room": "dev"})
        assert who["users"][0]["roles"] == ["founder"]
        carol = login(serve.port, "carol")
        join(carol, "dev")
        roles = {u["nick"]: u.get("roles") for u in
                 alice.request({"type": "who", "room": "dev"})["users"]}
        assert roles["carol"] == ["op"]
        bans = alice.request({"type": "moderate", "action": "bans", "room": "dev"})["bans"]
        assert {(b["what"], b["value"]) for b in bans} >= {("ban", "mallory"),
                                                           ("mute", "carol")}
        mallory = JsonClient(serve.port, "mallory")
        assert join(mallory, "dev")["code"] == "banned"
        assert mallory.request({"type": "msg", "room": "lobby", "text": "x"})["type"] == \
            "message"
        guest = JsonClient(serve.port, "guest")
        join(guest, "dev")
        assert guest.request({"type": "msg", "room": "dev", "text": "x"})["code"] == \
            "moderated"
        assert guest.request({"type": "topic", "room": "dev", "text": "x"})["code"] in (
            "moderated", "not_operator")
        for client in (alice, carol, mallory, guest):
            client.close()
    finally:
        assert serve.stop() == 0
    # and the log says who did what
    history = run(home, "history", "--db", db, "--kind", "moderation")
    assert history.returncode == 0, history.stderr
    assert "alice banned mallory from dev (troll)" in history.stdout
    assert "alice made carol an operator of dev" in history.stdout
    assert PASSWORD not in history.stdout + history.stderr


def test_admin_cli_offline_and_beside_a_running_server(tmp_path) -> None:
    home, db = str(tmp_path / "home"), str(tmp_path / "chat.db")
    motd = tmp_path / "motd"
    motd.write_text("welcome to the office\n")
    # a fresh database: create it with a first start, then register the admin offline
    serve = ServeProcess.start(["--no-discovery", "--db", db], env_home=home)
    serve.stop()
    made = run(home, "admin", "register", "root", "--db", db, stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    listed = run(home, "admin", "accounts", "--db", db)
    assert "root" in listed.stdout and "scrypt" not in listed.stdout
    serve = ServeProcess.start(["--no-discovery", "--db", db, "--admin", "root",
                                "--motd", str(motd), "--max-per-address", "0",
                                "--rate-limit", "0"], env_home=home)
    try:
        root = JsonClient(serve.port)
        root.send({"type": "hello", "version": 1, "nick": "root", "identify": PASSWORD})
        root.expect("welcome")
        assert root.expect("notice")["text"] == "welcome to the office"
        assert root.expect("account")["admin"] is True
        root.request({"type": "moderate", "action": "ban", "room": None,
                      "target": "203.0.113.7", "reason": "test"})
        # beside the running server: list and lift the ban, grant an admin, reset a password
        bans = run(home, "admin", "bans", "--db", db)
        assert bans.returncode == 0 and "server-wide: address 203.0.113.7" in bans.stdout
        ban_id = bans.stdout.split()[0].lstrip("#")
        assert run(home, "admin", "unban", ban_id, "--db", db).returncode == 0
        motd.write_text("new day\n")
        serve.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: root.request({"type": "motd"})["text"] == "new day")
        assert root.request({"type": "moderate", "action": "bans", "room": None})["bans"] == []
        bob = JsonClient(serve.port, "bob")
        bob.request({"type": "register", "password": PASSWORD})
        assert run(home, "admin", "grant", "bob", "--db", db).returncode == 0
        reset = run(home, "admin", "reset-password", "bob", "--db", db,
                    stdin="brand new pw\n")
        assert reset.returncode == 0, reset.stderr
        answer = bob.request({"type": "identify", "password": "brand new pw"})
        assert answer["admin"] is True
        assert run(home, "admin", "revoke", "nobody", "--db", db).returncode != 0
        root.close()
        bob.close()
        serve.proc.terminate()
        _, log = serve.proc.communicate(timeout=15)
        # the server's log shows logins, never a password or a hash
        assert "logged in to account root" in log
        for secret in (PASSWORD, "brand new pw", "scrypt$"):
            assert secret not in log
    finally:
        serve.stop()
