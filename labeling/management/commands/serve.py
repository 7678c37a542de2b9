import os
import signal
import socket
import subprocess
import sys
import threading
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand

from labeling.management.commands.demo_setup import demo_setup, sign_in_lines

# After the server answers, how long the worker's start-up lines get to come out before
# the banner, so that the banner is what stays on screen.
BANNER_AFTER_SECONDS = 3.0


class Command(BaseCommand):
    help = (
        "Run the web server and one Celery worker (all queues) together: the embedded mode. "
        "With --demo, set up the demo first; the sign-in lines come after the start-up lines."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--demo", action="store_true", help="Run demo_setup first (a second run keeps its data).")

    def handle(self, *args, addrport, demo, **options):
        host, _, port = addrport.rpartition(":")
        host = host or "127.0.0.1"
        url = f"http://{host}:{port}/"
        lines = [f"Veil is running at {url} (stop it with Ctrl+C)."]
        if demo:
            lines += sign_in_lines(demo_setup(slug="demo", write=self.stdout.write), url=url)
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "moderation",
                "worker",
                "--queues",
                "default,gpu",
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
            ],
            env=os.environ.copy(),
        )
        self.stdout.write(f"Celery worker started (pid {worker.pid}).")
        threading.Thread(target=self._banner, args=(host, int(port), lines), daemon=True).start()
        try:
            call_command("runserver", addrport, use_reloader=False)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()

    def _banner(self, host: str, port: int, lines: list[str]) -> None:
        """Print ``lines`` once the server accepts connections, after the start-up lines."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host, port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        time.sleep(BANNER_AFTER_SECONDS)
        rule = "-" * 72
        self.stdout.write("\n".join(["", rule, *lines, rule, ""]))
        self.stdout.flush()
