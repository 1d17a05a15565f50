#!/usr/bin/env bash
# The local stack: a single-node Apache Kafka (KRaft) from the Maven Central jars and a private
# redis-server, both on loopback and non-default ports, data and logs under .stack/ (git-ignored).
#   scripts/stack.sh up | down | status
# Ports and versions come from the environment (README, "Environment variables").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="${FRAUDSTREAM_STACK_DIR:-$root/.stack}"
cache="$root/.cache"
kafka_port="${FRAUDSTREAM_KAFKA_PORT:-19092}"
controller_port="${FRAUDSTREAM_KAFKA_CONTROLLER_PORT:-19093}"
redis_port="${FRAUDSTREAM_REDIS_PORT:-16379}"
# A 3-master Redis Cluster for the feature engine's cluster tests: ports base, base+1, base+2.
cluster_base="${FRAUDSTREAM_REDIS_CLUSTER_PORT:-17001}"
cluster_ports=("$cluster_base" "$((cluster_base + 1))" "$((cluster_base + 2))")
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$root/scripts/kafka/pom.xml")
kafka_libs="$cache/kafka-$kafka_version/libs"
kafka_heap="${FRAUDSTREAM_KAFKA_HEAP:-768m}"

say() { printf 'stack: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

need_java() {
  command -v java >/dev/null || die "java (17+) is not installed: apt-get install openjdk-17-jre-headless"
  command -v mvn >/dev/null || die "mvn is not installed: apt-get install maven"
}

need_redis() {
  if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing redis-server (Debian package)"
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
      die "redis-server is not installed. Install Debian's package: sudo apt-get install redis-server"
    fi
  fi
}

fetch_kafka() {
  [ -f "$kafka_libs/kafka_2.13-$kafka_version.jar" ] && return 0
  say "resolving Apache Kafka $kafka_version from Maven Central into ${kafka_libs#$root/}"
  mkdir -p "$kafka_libs"
  mvn -q -B -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$kafka_libs" -DincludeScope=runtime >"$cache/maven.log" 2>&1 \
    || { cat "$cache/maven.log" >&2; rm -rf "$kafka_libs"; die "maven could not resolve org.apache.kafka:kafka_2.13:$kafka_version"; }
}

kafka_up() {
  local dir="$state/kafka" pid="$state/kafka.pid"
  if alive "$pid"; then say "kafka already running (pid $(cat "$pid")) on 127.0.0.1:$kafka_port"; return 0; fi
  port_open "$kafka_port" && die "port $kafka_port is taken by another process; set FRAUDSTREAM_KAFKA_PORT"
  need_java
  fetch_kafka
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS
  cat >"$dir/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
PROPS
  local cp="$kafka_libs/*" jopts=(-Xms256m "-Xmx$kafka_heap" -XX:+UseG1GC -Djava.awt.headless=true "-Dlog4j2.configurationFile=$dir/log4j2.properties")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local id
    id=$(java -cp "$cp" "${jopts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -cp "$cp" "${jopts[@]}" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
      || { cat "$dir/format.log" >&2; die "kafka storage format failed"; }
  fi
  nohup java -cp "$cp" "${jopts[@]}" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 &
  echo $! >"$pid"
  say "kafka $kafka_version starting (pid $!) on 127.0.0.1:$kafka_port"
}

redis_up() {
  local dir="$state/redis" pid="$state/redis.pid"
  if alive "$pid"; then say "redis already running (pid $(cat "$pid")) on 127.0.0.1:$redis_port"; return 0; fi
  port_open "$redis_port" && die "port $redis_port is taken by another process; set FRAUDSTREAM_REDIS_PORT"
  need_redis
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" --daemonize yes \
    --pidfile "$pid" --logfile "$dir/redis.log" --save '' --appendonly no --protected-mode yes \
    --maxmemory-policy noeviction >/dev/null
  say "redis starting on 127.0.0.1:$redis_port"
}

cluster_up() {
  local dir="$state/redis-cluster" started=0 port
  mkdir -p "$dir"
  for port in "${cluster_ports[@]}"; do
    if alive "$dir/$port.pid"; then continue; fi
    port_open "$port" && die "port $port is taken by another process; set FRAUDSTREAM_REDIS_CLUSTER_PORT"
    mkdir -p "$dir/$port"
    rm -f "$dir/$port/nodes.conf"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/$port" --daemonize yes \
      --pidfile "$dir/$port.pid" --logfile "$dir/$port/redis.log" --save '' --appendonly no \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 >/dev/null
    started=1
  done
  [ "$started" = 1 ] || { say "redis cluster already running on ${cluster_ports[*]}"; return 0; }
  for port in "${cluster_ports[@]}"; do
    until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do sleep 0.1; done
  done
  if ! redis-cli -p "$cluster_base" cluster info | grep -q 'cluster_state:ok'; then
    redis-cli --cluster create "${cluster_ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 \
      || { cat "$dir/create.log" >&2; die "redis-cli --cluster create failed"; }
  fi
  local deadline=$((SECONDS + 30))
  until redis-cli -p "$cluster_base" cluster info | grep -q 'cluster_state:ok'; do
    [ $SECONDS -lt $deadline ] || die "redis cluster did not reach cluster_state:ok"
    sleep 0.2
  done
  say "redis cluster ready on 127.0.0.1:${cluster_ports[*]}"
}

cluster_down() {
  local dir="$state/redis-cluster" port
  for port in "${cluster_ports[@]}"; do
    if alive "$dir/$port.pid"; then
      redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
      stop_pid "$dir/$port.pid" "redis cluster node $port"
    fi
  done
}

wait_ready() {
  local deadline=$((SECONDS + ${FRAUDSTREAM_STACK_TIMEOUT:-120}))
  until redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; do
    [ $SECONDS -lt $deadline ] || die "redis did not answer PING on $redis_port; see $state/redis/redis.log"
    sleep 0.2
  done
  # Ready only when a metadata request (kafkajs admin) succeeds, not when the port opens.
  until node "$root/scripts/kafka-ready.mjs" "127.0.0.1:$kafka_port" 2>/dev/null; do
    alive "$state/kafka.pid" || { tail -n 30 "$state/kafka/stdout.log" "$state/kafka/server.log" >&2 2>/dev/null; die "kafka exited during start-up"; }
    [ $SECONDS -lt $deadline ] || die "kafka did not answer a metadata request on $kafka_port; see $state/kafka/server.log"
    sleep 0.5
  done
  say "ready: kafka 127.0.0.1:$kafka_port, redis 127.0.0.1:$redis_port"
}

stop_pid() {
  local pid_file="$1" name="$2"
  alive "$pid_file" || { rm -f "$pid_file"; return 0; }
  local pid; pid=$(cat "$pid_file")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then say "$name did not stop in 20 s; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$pid_file"
  say "$name stopped"
}

case "${1:-}" in
  up)
    mkdir -p "$state"
    [ -d "$root/node_modules/kafkajs" ] || die "node_modules missing: run npm ci (make does this)"
    redis_up
    kafka_up
    cluster_up
    wait_ready
    ;;
  down)
    cluster_down
    stop_pid "$state/kafka.pid" kafka
    if alive "$state/redis.pid"; then
      redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
      stop_pid "$state/redis.pid" redis
    fi
    ;;
  status)
    alive "$state/kafka.pid" && echo "kafka: running (pid $(cat "$state/kafka.pid")) 127.0.0.1:$kafka_port" || echo "kafka: stopped"
    alive "$state/redis.pid" && echo "redis: running (pid $(cat "$state/redis.pid")) 127.0.0.1:$redis_port" || echo "redis: stopped"
    alive "$state/redis-cluster/$cluster_base.pid" && echo "redis-cluster: running 127.0.0.1:${cluster_ports[*]}" || echo "redis-cluster: stopped"
    ;;
  clean)
    "$0" down
    rm -rf "$state"
    say "removed $state"
    ;;
  *) echo "usage: $0 up|down|status|clean" >&2; exit 2 ;;
esac
