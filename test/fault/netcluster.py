"""A cluster of real `sqraft node` processes, one per network namespace.

Layout (every name carries the run's tag, so two runs never collide and a
crashed run's leftovers can be found and removed):

    hub namespace  <tag>h : bridge "br0" 10.77.0.254/24 — the harness's clients
    node namespace <tag>1 : eth0 10.77.0.1/24, veth to the bridge
    node namespace <tag>2 : eth0 10.77.0.2/24 ...

Every node has its own address, so a packet filter inside a node's namespace
can tell peers apart (on one shared loopback every connection leaves from
127.0.0.1). Traffic only ever goes to addresses inside these namespaces.

The harness process itself moves into the hub namespace (`enter_hub`) before
it starts any thread, so its clients reach the nodes directly.

Faults offered here (the nemeses drive them):
  kill/restart (SIGKILL), pause/resume (SIGSTOP/SIGCONT), partition
  (nftables drop rules inside the namespaces, which stall established
  connections too), random packet loss (nftables), a full disk (the data directory on
  a small tmpfs that a balloon file fills).

`close()` removes everything: processes, namespaces, mounts, directories.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import wire

SUBNET = "10.77.0"
HUB_IP = SUBNET + ".254"
PORT = 9001
METRICS_PORT = 9101
TAG_PREFIX = "sqf"

CLONE_NEWNET = 0x40000000


def sh(*args, check=True, ns=None, timeout=20):
    """Runs a command (inside namespace `ns` when given); returns its stdout."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p.stdout


def remove_stale():
    """Deletes namespaces left by runs whose process is gone."""
    out = sh("ip", "netns", "list", check=False)
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(TAG_PREFIX):
            continue
        digits = "".join(c for c in name[len(TAG_PREFIX):] if c.isdigit())
        pid = int(digits[:-1] or 0) if digits else 0
        try:
            if pid:
                os.kill(pid, 0)
                continue  # that run is still alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        sh("ip", "netns", "del", name, check=False)


class Node:
    def __init__(self, cluster, id):
        self.cluster = cluster
        self.id = id
        self.ip = "%s.%d" % (SUBNET, id)
        self.address = "%s:%d" % (self.ip, PORT)
        self.metrics = "%s:%d" % (self.ip, METRICS_PORT)
        self.ns = "%s%d" % (cluster.tag, id)
        self.dir = os.path.join(cluster.root, "n%d" % id)
        self.mount = None  # a tmpfs under dir's parent when disk faults are wanted
        self.proc = None
        self.paused = False
        self.log_path = os.path.join(cluster.root, "n%d.log" % id)
        self.starts = 0

    # -- process -----------------------------------------------------------
    def start(self, founding=True):
        assert self.proc is None
        if self.cluster.target == "dqlite":
            # The reference: Debian's dqlite-demo (go-dqlite's app package on
            # libdqlite). The first node bootstraps, the others join it; a
            # restarted node resumes from its directory.
            args = ["dqlite-demo", "--api", "%s:8001" % self.ip, "--db", self.address, "--dir", self.dir]
            if self is not self.cluster.founders[0]:
                args += ["--join", self.cluster.founders[0].address]
        else:
            args = [self.cluster.binary, "node", "--id", self.id, "--address", self.address,
                    "--dir", self.dir, "--metrics-address", self.metrics,
                    "--latency-ms", self.cluster.latency_ms] + list(self.cluster.node_args)
        if self.cluster.target == "sqraft" and self.mount:
            # A small tmpfs: the node restarts itself once 8 MiB are free
            # again after a failed write (the default, 64 MiB, never is).
            args += ["--restart-free-mb", 8]
        if self.cluster.target == "sqraft" and founding and self.cluster.founders:
            args += ["--cluster", ",".join("%d@%s" % (n.id, n.address) for n in self.cluster.founders)]
        os.makedirs(self.dir, exist_ok=True)
        log = open(self.log_path, "ab")
        log.write(("--- start %d: %s\n" % (self.starts, " ".join(map(str, args)))).encode())
        log.flush()
        env = dict(os.environ)
        env.update(self.cluster.node_env)
        self.proc = subprocess.Popen(self.cluster.wrapper + ["ip", "netns", "exec", self.ns] +
                                     [str(a) for a in args],
                                     stdout=log, stderr=log, env=env)
        log.close()
        self.starts += 1
        self.paused = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        try:
            self.proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc is None:
            return None
        if self.paused:
            self.resume()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=10)
        self.proc = None
        return rc

    def pause(self):
        if self.alive() and not self.paused:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.proc is not None and self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False

    # -- state -------------------------------------------------------------
    def scrape(self, timeout=1.0):
        """The node's metrics as {name: value} (labels dropped), or None."""
        try:
            with urllib.request.urlopen("http://%s/metrics" % self.metrics, timeout=timeout) as r:
                text = r.read().decode()
        except Exception:
            return None
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            try:
                v = float(value)
            except ValueError:
                continue
            out[name] = v  # with its labels, e.g. sqraft_raft_role{role="leader"}
            out.setdefault(name.split("{")[0], v)
        return out

    def role(self, timeout=0.3):
        """"leader", "follower" or "candidate" as the node itself says, None if
        it does not answer. sqraft: its metrics; dqlite: whether its answer to
        LEADER names itself."""
        if not self.alive() or self.paused:
            return None
        if self.cluster.target == "dqlite":
            try:
                with wire.Conn(self.address, timeout_s=timeout) as c:
                    _, address = c.leader()
            except (wire.WireError, wire.ConnectionLost):
                return None
            return "leader" if address == self.address else "follower"
        m = self.scrape(timeout=timeout)
        if m is None:
            return None
        for r in ("leader", "follower", "candidate"):
            if m.get('sqraft_raft_role{role="%s"}' % r) == 1:
                return r
        return None

    def applied_index(self):
        """The node's applied index (sqraft only; None when unknown)."""
        if self.cluster.target != "sqraft":
            return None
        m = self.scrape()
        return int(m["sqraft_raft_applied_index"]) if m else None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


class NetCluster:
    """N nodes in their own namespaces; see the module docstring."""

    def __init__(self, binary, root, n=3, latency_ms=20, node_args=(), node_env=None,
                 disk_mb=0, wrapper=(), target="sqraft"):
        assert 1 <= n <= 9
        assert target in ("sqraft", "dqlite")
        self.target = target
        self.binary = os.path.abspath(binary)
        self.root = root
        self.latency_ms = latency_ms
        self.node_args = list(node_args)
        self.node_env = dict(node_env or {})
        self.wrapper = list(wrapper)
        self.tag = "%s%d" % (TAG_PREFIX, os.getpid())
        self.hub = self.tag + "h"
        self.nodes = [Node(self, i + 1) for i in range(n)]
        self.founders = list(self.nodes)
        self.retired = []  # nodes removed from the cluster (member nemesis)
        self.disk_mb = disk_mb
        self.filtered = set()  # namespaces with a partition table
        self.lossy = set()
        self.created = []
        os.makedirs(root, exist_ok=True)

    # -- network -----------------------------------------------------------
    def create_network(self):
        remove_stale()
        sh("ip", "netns", "add", self.hub)
        self.created.append(self.hub)
        sh("ip", "-n", self.hub, "link", "set", "lo", "up")
        sh("ip", "-n", self.hub, "link", "add", "name", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "addr", "add", HUB_IP + "/24", "dev", "br0")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        for node in self.nodes:
            self.add_namespace(node)

    def add_namespace(self, node):
        sh("ip", "netns", "add", node.ns)
        self.created.append(node.ns)
        sh("ip", "-n", node.ns, "link", "set", "lo", "up")
        veth = "vn%d" % node.id
        sh("ip", "-n", self.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
           "netns", node.ns)
        sh("ip", "-n", self.hub, "link", "set", veth, "master", "br0")
        sh("ip", "-n", self.hub, "link", "set", veth, "up")
        sh("ip", "-n", node.ns, "addr", "add", node.ip + "/24", "dev", "eth0")
        sh("ip", "-n", node.ns, "link", "set", "eth0", "up")
        if self.disk_mb:
            os.makedirs(node.dir, exist_ok=True)
            sh("mount", "-t", "tmpfs", "-o", "size=%dm" % self.disk_mb, "tmpfs", node.dir)
            node.mount = node.dir

    def add_node(self):
        """A new node (the next id, its own namespace and address), not started."""
        used = [n.id for n in self.nodes + self.retired]
        node = Node(self, max(used) + 1)
        assert node.id < 250
        self.add_namespace(node)
        self.nodes.append(node)
        return node

    def retire(self, node):
        """Stops `node` for good and wipes its data directory (its log stays
        for the final scan)."""
        node.kill()
        self.nodes.remove(node)
        self.retired.append(node)
        if node.mount:
            sh("umount", "-l", node.mount, check=False)
            node.mount = None
        shutil.rmtree(node.dir, ignore_errors=True)

    def enter_hub(self):
        """Moves this process (call before starting threads) into the hub namespace."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open("/run/netns/" + self.hub, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns " + self.hub)
        finally:
            os.close(fd)

    # -- faults ------------------------------------------------------------
    def isolate(self, groups):
        """Partitions the nodes into `groups` (lists of nodes): packets between
        nodes of different groups are dropped in both directions. Clients
        (the hub's address) still reach every node."""
        self.heal_partition()
        group_of = {}
        for gi, g in enumerate(groups):
            for node in g:
                group_of[node.id] = gi
        for node in self.nodes:
            others = [m.ip for m in self.nodes if group_of.get(m.id, -1) != group_of.get(node.id, -2)
                      and m is not node]
            if not others:
                continue
            self.block(node, others)

    def block(self, node, ips):
        """Drops packets between `node` and the addresses `ips` (inside node's namespace)."""
        s = "{ %s }" % ", ".join(ips)
        rules = ("table inet sqf {\n"
                 " chain in { type filter hook input priority 0; policy accept; ip saddr %s drop; }\n"
                 " chain out { type filter hook output priority 0; policy accept; ip daddr %s drop; }\n"
                 "}\n" % (s, s))
        if node.ns in self.filtered:
            sh("nft", "delete", "table", "inet", "sqf", ns=node.ns, check=False)
        p = subprocess.run(["ip", "netns", "exec", node.ns, "nft", "-f", "-"], input=rules,
                           capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            raise RuntimeError("nft: " + p.stderr.strip())
        self.filtered.add(node.ns)

    def heal_partition(self):
        for ns in list(self.filtered):
            sh("nft", "delete", "table", "inet", "sqf", ns=ns, check=False)
            self.filtered.discard(ns)

    def set_loss(self, node, percent):
        """Drops `percent` % of the packets in and out of node's interface, at
        random (nftables' numgen; netem needs a kernel module that may be
        missing)."""
        rules = ("table inet sqfloss {\n"
                 " chain in { type filter hook input priority -1; policy accept;"
                 " iifname \"eth0\" numgen random mod 100 < %d drop; }\n"
                 " chain out { type filter hook output priority -1; policy accept;"
                 " oifname \"eth0\" numgen random mod 100 < %d drop; }\n"
                 "}\n" % (percent, percent))
        if node.ns in self.lossy:
            sh("nft", "delete", "table", "inet", "sqfloss", ns=node.ns, check=False)
        p = subprocess.run(["ip", "netns", "exec", node.ns, "nft", "-f", "-"], input=rules,
                           capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            raise RuntimeError("nft: " + p.stderr.strip())
        self.lossy.add(node.ns)

    def heal_loss(self):
        for ns in list(self.lossy):
            sh("nft", "delete", "table", "inet", "sqfloss", ns=ns, check=False)
            self.lossy.discard(ns)

    def fill_disk(self, node, leave_bytes=0):
        """Fills node's tmpfs data directory with a balloon file (ENOSPC for the node)."""
        assert node.mount, "the cluster was made without disk_mb"
        balloon = os.path.join(node.dir, ".balloon")
        st = os.statvfs(node.dir)
        free = st.f_bavail * st.f_frsize - leave_bytes
        with open(balloon, "wb") as f:
            chunk = b"\0" * (1 << 20)
            try:
                while free > 0:
                    f.write(chunk[:min(len(chunk), free)])
                    free -= len(chunk)
                f.flush()
            except OSError:
                pass
        return balloon

    def free_disk(self, node):
        try:
            os.unlink(os.path.join(node.dir, ".balloon"))
        except FileNotFoundError:
            pass

    def heal(self):
        self.heal_partition()
        self.heal_loss()
        for node in self.nodes:
            if node.mount:
                self.free_disk(node)
            node.resume()

    # -- lifecycle -----------------------------------------------------------
    def start(self, after_network=None):
        """Creates the network, calls after_network() (e.g. enter_hub, which
        must come before any thread and before waiting for dqlite nodes to
        join one by one), then starts every node."""
        self.create_network()
        if after_network is not None:
            after_network()
        if self.target == "sqraft":
            for node in self.nodes:
                node.start()
            return
        first = self.nodes[0]
        first.start()
        if self.wait(lambda: first.role() == "leader", 30) is None:
            raise RuntimeError("dqlite: the first node did not lead within 30 s")
        for node in self.nodes[1:]:
            node.start()
            time.sleep(1)

        def voters():
            try:
                with wire.Conn(first.address, timeout_s=1) as c:
                    return sum(1 for _, _, role in c.cluster() if role == wire.VOTER) == len(self.nodes)
            except (wire.WireError, wire.ConnectionLost):
                return False
        if self.wait(voters, 60, step_s=0.5) is None:
            raise RuntimeError("dqlite: the nodes did not all become voters within 60 s")

    def close(self):
        for node in self.nodes + self.retired:
            try:
                node.kill()
            except Exception:
                pass
        for node in self.nodes + self.retired:
            if node.mount:
                sh("umount", "-l", node.mount, check=False)
                node.mount = None
        for ns in reversed(self.created):
            sh("ip", "netns", "del", ns, check=False)
        self.created = []

    def leader(self):
        """A running node that says it is leader (None if none does)."""
        for node in self.nodes:
            if node.role() == "leader":
                return node
        return None

    def wait(self, predicate, timeout_s, step_s=0.05):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            v = predicate()
            if v:
                return v
            time.sleep(step_s)
        return None

    def addresses(self):
        return [n.address for n in self.nodes]

    def remove_root(self):
        shutil.rmtree(self.root, ignore_errors=True)
