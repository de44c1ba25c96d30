"""nginx in the foreground, as a Program: in front of a stage (deploy/nginx.conf), or
serving a folder of files (a benchmark's yardstick)."""

import shutil
import signal
from pathlib import Path

from .processes import Program


def nginx_executable():
    """nginx's path, or None. Not always on a user's PATH: Debian installs it in /usr/sbin."""
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()), None)


class Nginx(Program):
    """nginx serving `site` (its server blocks, one listening on 127.0.0.1:`port`),
    as one process that needs no root, everything it writes in the folder `prefix`
    (its error.log among them). Stopped with SIGQUIT, nginx's graceful stop."""

    def __init__(self, site, port, prefix, timeout=10):
        prefix = Path(prefix)
        (prefix / "site.conf").write_text(site)
        # No workers to hand over to another user: the files it serves need no other owner.
        (prefix / "nginx.conf").write_text(f"""
            master_process off;
            pid {prefix}/nginx.pid;
            error_log {prefix}/error.log warn;
            events {{ worker_connections 1024; }}
            http {{
                access_log {prefix}/access.log;
                client_body_temp_path {prefix}/client_body;
                proxy_temp_path {prefix}/proxy;
                fastcgi_temp_path {prefix}/fastcgi;
                uwsgi_temp_path {prefix}/uwsgi;
                scgi_temp_path {prefix}/scgi;
                include {prefix}/site.conf;
            }}
        """)
        command = [nginx_executable(), "-p", prefix, "-e", prefix / "error.log", "-c", prefix / "nginx.conf",
                   "-g", "daemon off;"]
        super().__init__(command, port, timeout=timeout, stop_signal=signal.SIGQUIT)
        self.error_log = prefix / "error.log"
