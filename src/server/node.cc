#include "node.h"

#include <spdlog/spdlog.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <random>

#include "boundary.h"
#include "node_impl.h"
#include "session.h"
#include "wire.h"

namespace sqraft {

// ---- cluster specs ---------------------------------------------------------------

Result<std::vector<Member>> parse_cluster(const std::string& spec) {
  std::vector<Member> out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    if (comma == std::string::npos) comma = spec.size();
    std::string item = spec.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) {
      if (comma == spec.size()) break;
      return Status::Invalid("cluster '" + spec + "': empty entry");
    }
    const size_t at = item.find('@');
    if (at == std::string::npos || at == 0 || at + 1 == item.size()) {
      return Status::Invalid("cluster entry '" + item + "' is not ID@ADDRESS");
    }
    Member m;
    const std::string id = item.substr(0, at);
    for (char c : id) {
      if (c < '0' || c > '9') return Status::Invalid("cluster entry '" + item + "': id '" + id + "' is not a number");
    }
    errno = 0;
    m.id = std::strtoull(id.c_str(), nullptr, 10);
    if (m.id == 0 || errno == ERANGE) return Status::Invalid("cluster entry '" + item + "': id must be 1 or more");
    m.address = item.substr(at + 1);
    if (Result<Address> a = parse_address(m.address); !a.ok()) {
      return a.status().with_context("cluster entry '" + item + "'");
    }
    for (const Member& o : out) {
      if (o.id == m.id) return Status::Invalid("cluster: id " + id + " appears twice");
      if (o.address == m.address) return Status::Invalid("cluster: address " + m.address + " appears twice");
    }
    out.push_back(std::move(m));
    if (comma == spec.size()) break;
  }
  if (out.empty()) return Status::Invalid("cluster '" + spec + "' names no node");
  return out;
}

// ---- NodeImpl ------------------------------------------------------------------------

NodeImpl::NodeImpl(NodeOptions options) : options_(std::move(options)) {
  failure_domain_ = options_.failure_domain;
  weight_ = options_.weight;
}

NodeImpl::~NodeImpl() { (void)stop(); }

bool NodeImpl::post(std::function<void()> fn) {
  {
    std::lock_guard lk(post_mu_);
    if (loop_gone_) return false;
    posted_.push_back(std::move(fn));
  }
  uv_async_send(&async_);
  return true;
}

bool NodeImpl::leader_ready() const {
  return raft_ready_ && raft_state(const_cast<struct raft*>(&raft_)) == RAFT_LEADER && proposer_->leader_ready();
}

bool NodeImpl::read_lease_held() {
  return unsafe_leader_reads_ || (raft_ready_ && io_shim_->lease_held(lease_ms_));
}

DbWriter& NodeImpl::writer(const std::string& db) { return clients_->writer(db); }

DbWriter::Options NodeImpl::writer_options() const {
  DbWriter::Options o;
  o.queue_max = options_.write_queue_max;
  o.batch_max = options_.write_batch_max;
  o.queue_timeout_ms = options_.write_queue_timeout_ms;
  o.txn_idle_timeout_ms = options_.txn_idle_timeout_ms;
  o.idle_close_ms = options_.db_idle_close_ms;
  o.limits = options_.sql;
  o.node_stopping = &sql_stopping_;
  return o;
}

Status NodeImpl::may_open(const std::string& db) {
  if (clients_->has_writer(db) || vfs().exists(db)) return Status::Ok();
  const size_t have = std::max(clients_->writers().size(), vfs().count());
  if (have < options_.max_databases) return Status::Ok();
  return Status::Error(SQLITE_CANTOPEN, "cannot create database '" + db + "': the node holds " + std::to_string(have) +
                                            " databases (limit " + std::to_string(options_.max_databases) +
                                            ", --max-databases)");
}

NodeGauges NodeImpl::gauges() {
  NodeGauges g;
  g.id = options_.id;
  g.client_connections = clients_->sessions();
  g.databases = std::max(clients_->writers().size(), vfs().count());
  if (raft_ready_) {
    g.term = raft_.current_term;
    g.role = raft_state(&raft_);
    const char* address = nullptr;
    raft_id leader_id = 0;
    raft_leader(&raft_, &leader_id, &address);
    g.leader_id = leader_id;
    g.commit_index = raft_.commit_index;
    g.applied_index = raft_last_applied(&raft_);
    g.last_index = raft_last_index(&raft_);
    for (unsigned i = 0; i < raft_.configuration.n; i++) {
      if (raft_.configuration.servers[i].role == RAFT_VOTER) g.voters++;
    }
  }
  for (const auto& [name, w] : clients_->writers()) {
    g.dbs.push_back({name, w->queue_depth(), w->batches(), w->batched_statements(), w->connection_open()});
  }
  return g;
}

Result<std::string> NodeImpl::metrics_page() {
  {
    std::lock_guard lk(state_mu_);
    if (state_ != State::kRunning) return Status::Busy("the node is not running");
  }
  auto promise = std::make_shared<std::promise<NodeGauges>>();
  std::future<NodeGauges> f = promise->get_future();
  if (!post([this, promise] { promise->set_value(gauges()); })) return Status::Busy("the node is stopping");
  if (f.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
    return Status::Busy("the node's loop did not answer within 2 s");
  }
  NodeGauges g = f.get();
  measure_raft_dir(options_.dir, &g);
  return render_metrics(metrics_, g);
}

namespace {

// Files libraft's libuv backend keeps in a data directory: metadata1/2,
// open segments "open-N", closed segments "START-END" (16 digits each),
// snapshots "snapshot-TERM-INDEX-TIME[.meta]", and its temporary and probe
// files, which start with a dot or "tmp-".
bool raft_file(const std::string& name) {
  if (name == "metadata1" || name == "metadata2") return true;
  if (name.rfind("open-", 0) == 0 || name.rfind("snapshot-", 0) == 0 || name.rfind("tmp-", 0) == 0) return true;
  if (name.empty() || name[0] == '.') return true;
  if (name.size() == 33 && name[16] == '-') {
    for (size_t i = 0; i < name.size(); i++) {
      if (i != 16 && (name[i] < '0' || name[i] > '9')) return false;
    }
    return true;
  }
  // The database files of disk mode; the root of a file system of its own.
  return name == kDatabasesDir || name == "lost+found";
}

}  // namespace

Status NodeImpl::open_dir() {
  const std::string& dir = options_.dir;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status::IoError("data directory '" + dir + "': " + std::strerror(errno));
    // Create it, and any missing parent, readable by this user only.
    std::error_code ec;
    std::filesystem::path path(dir);
    std::vector<std::filesystem::path> created;
    for (std::filesystem::path p = path; !p.empty() && !std::filesystem::exists(p, ec); p = p.parent_path()) {
      created.push_back(p);
      if (p == p.parent_path()) break;
    }
    for (auto it = created.rbegin(); it != created.rend(); ++it) {
      if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST) {
        return Status::IoError("cannot create data directory '" + it->string() + "': " + std::strerror(errno));
      }
    }
    spdlog::info("created data directory '{}' (mode 0700)", dir);
    if (::stat(dir.c_str(), &st) != 0) return Status::IoError("data directory '" + dir + "': " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return Status::IoError("data directory '" + dir + "' is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return Status::IoError("data directory '" + dir + "' is not writable: " + std::strerror(errno));
  }
  // A directory that holds someone else's files is not a node's: refuse it
  // rather than mix libraft's files into it.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_socket(ec)) continue;  // the node's own listening socket may live here
    if (!raft_file(name)) {
      return Status::IoError("data directory '" + dir + "' holds files that are not sqraft's (for example '" + name +
                             "'): give a new or empty directory");
    }
  }
  if (ec) return Status::IoError("data directory '" + dir + "': " + ec.message());
  if (!dir_lock_) {
    Result<std::unique_ptr<DirLock>> lock = DirLock::acquire(dir);
    if (!lock.ok()) return lock.status();
    dir_lock_ = std::move(lock).value();
  }
  return Status::Ok();
}

// Bootstraps a new cluster if this node is one of its founders.
Status NodeImpl::bootstrap() {
  bool founder = false;
  for (const Member& m : options_.cluster) founder = founder || m.id == options_.id;
  if (!options_.cluster.empty() && !founder) {
    // A node added later (or restarted after it joined): nothing to found.
    spdlog::info("node {} is not one of the founding voters: starting from its data directory (a new node waits "
                 "to be added)", options_.id);
  } else if (!options_.cluster.empty()) {
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (const Member& m : options_.cluster) {
      if (int e = raft_configuration_add(&conf, m.id, m.address.c_str(), m.role); e != 0) {
        raft_configuration_close(&conf);
        return Status::Invalid("cluster member " + std::to_string(m.id) + ": " + raft_strerror(e));
      }
    }
    const int rv = raft_bootstrap(&raft_, &conf);
    raft_configuration_close(&conf);
    if (rv == 0) {
      spdlog::info("bootstrapped a new cluster of {} voters", options_.cluster.size());
    } else if (rv == RAFT_CANTBOOTSTRAP) {
      spdlog::info("data directory already holds a cluster: rejoining it");
    } else {
      return Status::IoError(std::string("bootstrap: ") + raft_strerror(rv) + ": " + io_.errmsg);
    }
  }
  return Status::Ok();
}

Status NodeImpl::init_raft() {
  // A peer connection silent for an election timeout is dead for Raft's
  // purposes: let the kernel abort it so that libraft reconnects.
  transport_ = std::make_unique<Transport>(&loop_, std::max(1u, options_.network_latency_ms) * 50);
  int rv = raft_uv_init(&io_, &loop_, options_.dir.c_str(), transport_->raft_transport());
  if (rv != 0) return Status::IoError("raft I/O in '" + options_.dir + "': " + raft_strerror(rv) + ": " + io_.errmsg);
  io_ready_ = true;
  // A peer that restarts must hear from the leader before its election timer
  // fires, or it starts an election (and may win it): retry connections at
  // the heartbeat pace, not libraft's default of one second.
  raft_uv_set_connect_retry_delay(&io_, std::max(10u, std::max(1u, options_.network_latency_ms) * 5));
  // libraft 0.15's libuv backend implements async_work (snapshots encoded on
  // libuv's thread pool) but still reports interface version 1.
  if (io_.version < 2 && io_.async_work != nullptr) io_.version = 2;
  Proposer::Options ro;
  ro.vfs_name = "sqraft-node-" + std::to_string(options_.id) + "-" + std::to_string(reinterpret_cast<uintptr_t>(this));
  ro.page_size = options_.page_size;
  ro.spill_threshold_bytes = options_.spill_threshold_bytes;
  ro.checkpoint_threshold_frames = options_.checkpoint_threshold_frames;
  ro.commit_outcome_timeout_ms = options_.commit_outcome_timeout_ms;
  ro.metrics = &metrics_;
  if (options_.storage == Storage::kDisk) ro.db_dir = options_.dir + "/" + kDatabasesDir;
  Result<std::unique_ptr<Proposer>> proposer = Proposer::create(ro);
  if (!proposer.ok()) return proposer.status();
  proposer_ = std::move(proposer).value();
  if (options_.storage == Storage::kDisk) {
    const auto t_load = std::chrono::steady_clock::now();
    Result<size_t> loaded = proposer_->vfs().load();
    if (!loaded.ok()) return loaded.status().with_context("database files in '" + ro.db_dir + "'");
    spdlog::info("disk mode: opened {} databases from '{}' in {:.1f} ms", loaded.value(), ro.db_dir,
                 std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_load).count());
  }
  if (!options_.vfs_name.empty()) {
    if (Status s = proposer_->vfs().register_alias(options_.vfs_name); !s.ok()) return s;
  }
  proposer_->on_fatal([this](const Status& why) {
    // Silent divergence is the worst failure a replicated database can have:
    // stop serving at once, loudly, and leave the data for inspection.
    if (why.code() == kErrStorageWrite) {
      spdlog::error("node {}: stopping: {}", options_.id, why.message());  // a full disk, not a bug
    } else {
      spdlog::critical("node {}: stopping: {}", options_.id, why.message());
    }
    stop_itself(why);
  });
  io_shim_ = std::make_unique<RaftIoShim>(&io_);
  io_shim_->on_io_failure([this](const std::string& what) {
    // libraft 0.15 fails every write after a failed one, and a leader whose
    // own append failed would go on committing entries it does not hold:
    // stop now (nothing this node applied after the failure is persisted;
    // what it had stored is kept). A full disk is not a bug of the node:
    // an error, not a critical. `sqraft node` restarts once there is room.
    spdlog::error("node {}: stopping: the Raft log could not be written: {}", options_.id, what);
    stop_itself(Status::Error(kErrRaftWrite, "the Raft log could not be written: " + what));
  });
  rv = raft_init(&raft_, io_shim_->io(), proposer_->raft_fsm(), options_.id, options_.address.c_str());
  if (rv != 0) return Status::Internal(std::string("raft init: ") + raft_errmsg(&raft_));
  raft_ready_ = true;
  proposer_->fsm().set_raft(&raft_);  // before raft_start, which may apply entries
  const unsigned latency = std::max(1u, options_.network_latency_ms);
  raft_set_heartbeat_timeout(&raft_, latency * 5);
  raft_set_election_timeout(&raft_, latency * 50);
  raft_set_snapshot_threshold(&raft_, options_.snapshot_threshold);
  raft_set_snapshot_trailing(&raft_, options_.snapshot_trailing);
  raft_set_pre_vote(&raft_, true);
  io_shim_->attach(&raft_);
  // The read lease ends a fifth of an election timeout before any follower
  // could vote for someone else: the margin is for clock rates that differ
  // between machines (LeaderLease).
  lease_ms_ = uint64_t(raft_.election_timeout) * 4 / 5;
  if (const char* v = std::getenv("SQRAFT_TEST_UNSAFE_LEADER_READS"); v != nullptr && std::string(v) == "1") {
    // The fault suite's positive control: a deposed leader answers reads.
    unsafe_leader_reads_ = true;
    spdlog::warn("node {}: SQRAFT_TEST_UNSAFE_LEADER_READS=1: reads are answered without checking leadership "
                 "(for tests only: reads can be stale)", options_.id);
  }
  // A follower busy with its own snapshot drops an InstallSnapshot without
  // answering; the leader retries after this long.
  raft_set_install_snapshot_timeout(&raft_, std::max(5000u, latency * 500));

  if (Status b = bootstrap(); !b.ok()) return b;
  const auto t0 = std::chrono::steady_clock::now();
  rv = raft_start(&raft_);
  if (rv != 0) {
    return Status::IoError(std::string("cannot start raft from '") + options_.dir + "': " + raft_errmsg(&raft_));
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  catch_up_index_ = raft_last_index(&raft_);
  proposer_->fsm().set_replay_end(catch_up_index_);
  spdlog::info("loaded snapshot and log in {:.1f} ms (snapshot at {}, last index {}, {} databases)", ms,
               raft_.log.snapshot.last_index, catch_up_index_, proposer_->vfs().names().size());
  return Status::Ok();
}

Status NodeImpl::start() {
  {
    std::lock_guard lk(state_mu_);
    if (state_ != State::kCreated) return Status::Invalid("node already started");
  }
  started_at_ = std::chrono::steady_clock::now();
  // A peer or client that goes away while we write to it must not kill the
  // process: ignore SIGPIPE unless the application handles it itself.
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
  if (Status s = open_dir(); !s.ok()) return s;
  if (!options_.metrics_address.empty()) {
    // Listening first: a metrics address that cannot be used fails the start
    // before anything else runs. Until the node runs, scrapes get 503.
    Result<std::unique_ptr<MetricsServer>> m =
        MetricsServer::start(options_.metrics_address, [this] { return metrics_page(); });
    if (!m.ok()) return m.status();
    metrics_server_ = std::move(m).value();
  }
  Result<Address> listen_addr = parse_address(options_.bind_address.empty() ? options_.address : options_.bind_address);
  if (!listen_addr.ok()) return listen_addr.status().with_context("bind address");
  if (int rv = uv_loop_init(&loop_); rv != 0) return Status::Internal(std::string("uv loop: ") + uv_strerror(rv));
  Status s = init_raft();
  if (s.ok()) s = listen_on(&loop_, listen_addr.value(), 1024, on_connection, this, &listener_);
  if (!s.ok()) {
    // Unwind on this thread: close what was opened and run the loop dry.
    if (raft_ready_) {
      raft_close(&raft_, nullptr);
    } else if (io_ready_) {
      io_.close(&io_, nullptr);
    }
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (io_ready_) raft_uv_close(&io_);
    uv_loop_close(&loop_);
    raft_ready_ = io_ready_ = false;
    std::lock_guard lk(state_mu_);
    state_ = State::kStopped;
    return s;
  }
  readers_ = std::make_unique<ThreadPool>(std::max(1u, options_.read_threads));
  writer_pool_ = std::make_unique<WriterPool>(std::max(1u, options_.write_threads));
  clients_ = std::make_unique<Clients>(*this, writer_options(), *writer_pool_);
  uv_async_init(&loop_, &async_, [](uv_async_t* a) {
    auto* self = static_cast<NodeImpl*>(a->data);
    std::vector<std::function<void()>> fns;
    {
      std::lock_guard lk(self->post_mu_);
      fns.swap(self->posted_);
    }
    // A completion that throws loses its own request (its client times
    // out); the node and the other completions go on.
    for (auto& fn : fns) at_c_boundary("loop task", fn);
    if (self->stop_requested_ && !self->shutting_down_) self->begin_shutdown();
  });
  async_.data = this;
  uv_prepare_init(&loop_, &prepare_);
  prepare_.data = this;
  uv_prepare_start(&prepare_, [](uv_prepare_t* p) {
    at_c_boundary("loop poll", [p] { static_cast<NodeImpl*>(p->data)->on_poll(); });
  });
  uv_timer_init(&loop_, &timer_);
  timer_.data = this;
  uv_timer_start(&timer_, [](uv_timer_t*) {}, 100, 100);  // keeps poll() running while idle
  std::promise<void> running;
  auto running_f = running.get_future();
  thread_ = std::thread([this, &running] {
    proposer_->attach(&raft_, [this] {
      // Also called after the node stopped (connections the application
      // kept, keep_vfs_after_stop): the loop and its handles may be gone.
      std::lock_guard lk(post_mu_);
      if (!loop_gone_) uv_async_send(&async_);
    });
    running.set_value();
    loop_main();
  });
  running_f.wait();
  {
    std::lock_guard lk(state_mu_);
    state_ = State::kRunning;
  }
  start_persister();
  if (listen_addr.value().kind == Address::Kind::kPath) socket_file_ = listen_addr.value().path;
  spdlog::info("node {} listening on {}", options_.id, listen_addr.value().text);
  return Status::Ok();
}

void NodeImpl::loop_main() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  {
    std::lock_guard lk(post_mu_);
    loop_gone_ = true;
  }
}

void NodeImpl::on_connection(uv_stream_t* server, int status) {
  // Out of memory: the connection waits in the backlog (or is dropped).
  at_c_boundary("accept", [&] { static_cast<NodeImpl*>(server->data)->accept_connection(server, status); });
}

void NodeImpl::accept_connection(uv_stream_t* server, int status) {
  NodeImpl* self = this;
  if (status != 0) {
    spdlog::warn("accept: {}", uv_strerror(status));
    return;
  }
  Result<uv_stream_t*> client = accept_from(server);
  if (!client.ok()) {
    spdlog::warn("{}", client.status().message());
    return;
  }
  const size_t open = self->clients_->sessions();
  if (self->shutting_down_ || open >= self->options_.max_connections) {
    self->metrics_.connections_refused++;
    spdlog::warn("refusing connection: {} connections open (limit {})", open,
                 self->options_.max_connections);
    // Say why before closing: a client reads this as the answer to its
    // first request. Best effort (the socket buffer of a new connection has
    // room; a failed write only loses the message).
    const std::string why = self->shutting_down_
                                ? std::string("the node is shutting down")
                                : "too many connections: the node serves " + std::to_string(open) +
                                      " (limit " + std::to_string(self->options_.max_connections) +
                                      ", --max-connections)";
    std::vector<uint8_t> msg = wire::failure(SQLITE_BUSY, why);
    uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(msg.data()), unsigned(msg.size()));
    (void)uv_try_write(client.value(), &buf, 1);  // ignored: closing either way
    close_stream(client.value());
    return;
  }
  self->metrics_.connections_accepted++;
  self->clients_->add(client.value());
}

void NodeImpl::on_poll() {
  if (shutting_down_) return;
  proposer_->poll();
  const bool is_leader = raft_state(&raft_) == RAFT_LEADER;
  leader = is_leader;
  switch (clients_->poll(is_leader)) {
    case Clients::Leadership::kLost:
      spdlog::info("node {}: no longer the leader", options_.id);
      break;
    case Clients::Leadership::kGained:
      spdlog::info("node {}: leader in term {}", options_.id, raft_.current_term);
      break;
    case Clients::Leadership::kSame:
      break;
  }
  if (!caught_up_logged_ && raft_last_applied(&raft_) >= catch_up_index_) {
    caught_up_logged_ = true;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_at_).count();
    const Fsm& fsm = proposer_->fsm();
    spdlog::info("node {}: start-up done: applied the log up to index {} {:.1f} ms after start ({} entries "
                 "replayed, {} already in the database files; {} of its own log replayed)",
                 options_.id, raft_last_applied(&raft_), ms, fsm.applied_commands(), fsm.skipped_commands(),
                 fsm.replayed_commands());
  }
}

void NodeImpl::stop_itself(const Status& why) {
  {
    std::lock_guard lk(post_mu_);
    stop_requested_ = true;
  }
  uv_async_send(&async_);
  if (options_.on_fatal) options_.on_fatal(why);
}

void NodeImpl::begin_shutdown() {
  shutting_down_ = true;
  sql_stopping_ = true;
  if (listener_) {
    close_stream(listener_);
    listener_ = nullptr;
    if (!socket_file_.empty()) ::unlink(socket_file_.c_str());  // the next start binds it again
  }
  proposer_->shutdown();
  clients_->close_all("node stopping");
  uv_timer_stop(&timer_);
  raft_close(&raft_, [](struct raft* r) {
    auto* self = static_cast<NodeImpl*>(r->data);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->async_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->prepare_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->timer_), nullptr);
  });
}

void NodeImpl::start_persister() {
  if (options_.storage != Storage::kDisk) return;
  persister_ = std::thread([this] {
    std::unique_lock lk(persist_mu_);
    while (!persist_stop_) {
      persist_cv_.wait_for(lk, std::chrono::milliseconds(std::max(10u, options_.persist_interval_ms)));
      lk.unlock();
      // Records what is applied, so that a restart replays only what came
      // after; a failure is retried next time (the log still has it all).
      if (Status s = proposer_->vfs().persist_all(); !s.ok()) {
        spdlog::warn("node {}: recording the database files' state: {}", options_.id, s.message());
      }
      lk.lock();
    }
  });
}

void NodeImpl::stop_persister() {
  if (!persister_.joinable()) return;
  {
    std::lock_guard lk(persist_mu_);
    persist_stop_ = true;
  }
  persist_cv_.notify_all();
  persister_.join();
  if (!proposer_->diverged()) {
    if (Status s = proposer_->vfs().persist_all(); !s.ok()) {
      spdlog::warn("node {}: recording the database files' state: {}", options_.id, s.message());
    }
  }
}

Status NodeImpl::stop() {
  {
    std::lock_guard lk(state_mu_);
    if (state_ != State::kRunning) return Status::Ok();
    state_ = State::kStopped;
  }
  raft_.data = this;
  metrics_server_.reset();  // its scrapes read the loop: stop them while it runs
  sql_stopping_ = true;  // whatever SQL runs stops within a few thousand VM steps
  {
    // The loop may already be gone if the node stopped itself (on_fatal).
    std::lock_guard lk(post_mu_);
    stop_requested_ = true;
    if (!loop_gone_) uv_async_send(&async_);
  }
  thread_.join();
  // The loop is gone: finish what its threads still run, then free.
  clients_->stop_writers();
  readers_->stop();
  writer_pool_->stop();
  clients_.reset();
  stop_persister();  // a last record of everything applied: a restart replays nothing
  raft_uv_close(&io_);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  if (options_.keep_vfs_after_stop) {
    (void)proposer_.release();  // the process is exiting: its connections may outlive the node
  } else {
    proposer_.reset();
  }
  transport_.reset();
  io_shim_.reset();
  dir_lock_.reset();
  spdlog::info("node {} stopped", options_.id);
  return Status::Ok();
}

Status NodeImpl::handover() {
  {
    std::lock_guard lk(state_mu_);
    if (state_ != State::kRunning) return Status::Invalid("node is not running");
  }
  struct Transfer {
    struct raft_transfer req;
    std::promise<Status> done;
  };
  auto t = std::make_shared<Transfer>();
  std::future<Status> f = t->done.get_future();
  const bool posted = post([this, t] {
    if (raft_state(&raft_) != RAFT_LEADER) {
      t->done.set_value(Status::Ok());
      return;
    }
    t->req.data = new std::shared_ptr<Transfer>(t);
    int rv = raft_transfer(&raft_, &t->req, 0, [](struct raft_transfer* req) {
      std::unique_ptr<std::shared_ptr<Transfer>> holder(static_cast<std::shared_ptr<Transfer>*>(req->data));
      at_c_boundary("handover completion", [&] { (*holder)->done.set_value(Status::Ok()); });
    });
    if (rv != 0) {
      delete static_cast<std::shared_ptr<Transfer>*>(t->req.data);
      t->done.set_value(rv == RAFT_NOTFOUND ? Status::Ok()  // no other voter: nothing to hand over
                                            : Status::Error(SQLITE_ERROR, std::string("transfer: ") + raft_strerror(rv)));
    }
  });
  if (!posted) return Status::Invalid("node is not running");
  return f.get();
}

std::string NodeImpl::describe_state() {
  std::promise<std::string> p;
  auto f = p.get_future();
  if (!post([this, &p] {
        raft_id lid = 0;
        const char* laddr = nullptr;
        raft_leader(&raft_, &lid, &laddr);
        p.set_value("state=" + std::to_string(raft_state(&raft_)) + " term=" + std::to_string(raft_.current_term) +
                    " leader=" + std::to_string(lid) + " last_index=" + std::to_string(raft_last_index(&raft_)) +
                    " applied=" + std::to_string(raft_last_applied(&raft_)));
      })) {
    return "stopped";
  }
  return f.get();
}

// ---- Node ------------------------------------------------------------------------------

Node::Node(std::unique_ptr<NodeImpl> impl) : impl_(std::move(impl)) {}
Node::~Node() { (void)stop(); }

Result<std::unique_ptr<Node>> Node::create(NodeOptions options) {
  if (options.id == 0) return Status::Invalid("node id must be 1 or more");
  if (Result<Address> a = parse_address(options.address); !a.ok()) return a.status().with_context("node address");
  if (!options.bind_address.empty()) {
    if (Result<Address> a = parse_address(options.bind_address); !a.ok()) return a.status().with_context("bind address");
  }
  if (options.dir.empty()) return Status::Invalid("data directory must be given");
  if (!wal::valid_page_size(options.page_size)) return Status::Invalid("invalid page size");
  if (options.snapshot_threshold == 0) return Status::Invalid("snapshot threshold must be 1 or more");
  return std::unique_ptr<Node>(new Node(std::make_unique<NodeImpl>(std::move(options))));
}

Status Node::start() { return impl_->start(); }
Status Node::stop() { return impl_->stop(); }
Status Node::handover() { return impl_->handover(); }
raft_id Node::id() const { return impl_->options().id; }
const std::string& Node::address() const { return impl_->options().address; }
bool Node::is_leader() const { return impl_->leader.load(); }
std::string Node::leader_address() const { return impl_->leader_address(); }
bool Node::has_database(const std::string& db) const { return impl_->has_database(db); }

std::string NodeImpl::leader_address() {
  std::lock_guard lk(state_mu_);
  return state_ == State::kRunning ? proposer_->leader_address() : "";
}

bool NodeImpl::has_database(const std::string& db) {
  std::lock_guard lk(state_mu_);
  return state_ == State::kRunning && proposer_->vfs().exists(db);
}
std::string Node::describe_state() const { return impl_->describe_state(); }

raft_id Node::generate_id(const std::string& address) {
  std::random_device rd;
  const auto now = std::chrono::system_clock::now().time_since_epoch().count();
  raft_id id = raft_digest(address.c_str(), uint64_t(now) ^ (uint64_t(rd()) << 32 | rd()));
  id &= 0x7fffffffffffffffULL;
  return id == 0 ? 1 : id;
}

Status Node::recover(const std::string& dir, raft_id id, const std::string& address, const std::vector<Member>& cluster) {
  if (cluster.empty()) return Status::Invalid("recover: the new cluster configuration is empty");
  // Never under a running node.
  Result<std::unique_ptr<DirLock>> lock = DirLock::acquire(dir);
  if (!lock.ok()) return lock.status().with_context("recover");
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct raft_uv_transport transport_stub {};
  Transport transport(&loop);
  struct raft_io io;
  int rv = raft_uv_init(&io, &loop, dir.c_str(), transport.raft_transport());
  (void)transport_stub;
  if (rv != 0) {
    uv_loop_close(&loop);
    return Status::IoError("recover: raft I/O in '" + dir + "': " + raft_strerror(rv) + ": " + io.errmsg);
  }
  struct raft_fsm fsm {};
  fsm.version = 1;
  struct raft raft;
  Status result;
  rv = raft_init(&raft, &io, &fsm, id, address.c_str());
  if (rv == 0) {
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (const Member& m : cluster) raft_configuration_add(&conf, m.id, m.address.c_str(), m.role);
    rv = raft_recover(&raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) result = Status::IoError(std::string("recover: ") + raft_strerror(rv) + ": " + raft_errmsg(&raft));
    raft_close(&raft, nullptr);
  } else {
    result = Status::Internal(std::string("recover: raft init: ") + raft_strerror(rv));
    io.close(&io, nullptr);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  raft_uv_close(&io);
  uv_loop_close(&loop);
  return result;
}

}  // namespace sqraft
