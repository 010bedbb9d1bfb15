#!/usr/bin/env bash
# The real engines of the test suite, on loopback: Apache Kafka (KRaft, one node that is broker and
# controller) and Apache Cassandra (the CQL server of the scylla:// backend).
#
#   scripts/engines.sh install        fetch the pinned jars with Maven (checksums checked) into the cache
#   scripts/engines.sh up             install if missing, start what is not running (reusing the data
#                                     and ports of an earlier `up`), wait until each answers a real
#                                     request, print KAFKA_BOOTSTRAP=..., SCYLLA_URI=... and the
#                                     SASL-over-TLS listener's KAFKA_SASL_BOOTSTRAP, KAFKA_SASL_CA,
#                                     KAFKA_SASL_USER and KAFKA_SASL_PASSWORD
#   scripts/engines.sh env            print those lines for engines already up (exit 1 if none)
#   scripts/engines.sh kill NAME      SIGKILL kafka or cassandra (the fault tests); `up` restarts it
#                                     on its data dir and port
#   scripts/engines.sh down           stop them and remove their data
#
# No Confluent-compatible schema registry runs here: Apicurio Registry's application cannot be
# resolved from Maven Central (see the README, "What is not tested here"), so no
# SCHEMA_REGISTRY_URL is printed.
#
# Jars live in $VISIONLOG_ENGINES_CACHE (default ~/.cache/visionlog/engines), shared by clones; the
# running engines' data, logs, ports and pids in $VISIONLOG_ENGINES_DIR (default .visionlog/engines
# of this clone), so two clones never stop each other's engines.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

KAFKA_VERSION=4.4.0
CASSANDRA_VERSION=5.0.6
CACHE="${VISIONLOG_ENGINES_CACHE:-$HOME/.cache/visionlog/engines}"
RUN="${VISIONLOG_ENGINES_DIR:-$PWD/.visionlog/engines}"
KAFKA_LIB="$CACHE/kafka-$KAFKA_VERSION"
CASSANDRA_LIB="$CACHE/cassandra-$CASSANDRA_VERSION"
KEYSPACE=visionlog
SASL_USER=visionlog

log() { echo "engines: $*" >&2; }

# Maven resolves the artifact and its runtime dependencies and copies the jars; -C fails on a
# checksum mismatch instead of warning.
fetch_jars() { # dest, then "group:artifact:version" ...
    local dest=$1
    shift
    local tmp deps=""
    tmp=$(mktemp -d)
    for gav in "$@"; do
        IFS=: read -r g a v <<<"$gav"
        deps="$deps<dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version></dependency>"
    done
    cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>visionlog.engines</groupId><artifactId>jars</artifactId><version>1</version><packaging>pom</packaging>
<dependencies>$deps</dependencies></project>
EOF
    rm -rf "$dest.partial"
    (cd "$tmp" && mvn -q -B -C dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dest.partial") >&2
    rm -rf "$tmp" "$dest"
    mv "$dest.partial" "$dest"
}

install() {
    command -v java >/dev/null || { log "java is missing (OpenJDK 17)"; exit 1; }
    command -v mvn >/dev/null || { log "mvn is missing (Maven)"; exit 1; }
    if [ ! -f "$KAFKA_LIB/kafka_2.13-$KAFKA_VERSION.jar" ]; then
        log "fetching Apache Kafka $KAFKA_VERSION with Maven"
        fetch_jars "$KAFKA_LIB" "org.apache.kafka:kafka_2.13:$KAFKA_VERSION" \
            "org.apache.logging.log4j:log4j-slf4j-impl:2.25.5"
    fi
    if [ ! -f "$CASSANDRA_LIB/cassandra-all-$CASSANDRA_VERSION.jar" ]; then
        log "fetching Apache Cassandra $CASSANDRA_VERSION with Maven"
        fetch_jars "$CASSANDRA_LIB" "org.apache.cassandra:cassandra-all:$CASSANDRA_VERSION"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A port remembered in $RUN/ports (so a restarted engine comes back where its clients look).
port() { # name
    local file="$RUN/ports/$1"
    if [ ! -s "$file" ]; then
        mkdir -p "$RUN/ports"
        free_port >"$file"
    fi
    cat "$file"
}

running() { # name
    local pid_file="$RUN/$1.pid"
    [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

wait_for() { # name, seconds, command...
    local name=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ! running "$name"; then
            log "$name exited while starting; the last lines of its log:"
            tail -n 30 "$RUN/$name.out" >&2 || true
            exit 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "$name did not answer within ${seconds}s; see $RUN/$name.out"
            exit 1
        fi
        sleep 0.5
    done
}

# ---- Apache Kafka ------------------------------------------------------------------------------

# A throwaway certificate authority and a broker certificate for 127.0.0.1 (PKCS#12 for the
# broker, the CA's PEM for clients), and a random password for the SASL user: made once per data
# dir, removed by `down`.
kafka_tls() {
    local tls="$RUN/kafka/tls"
    [ -s "$tls/broker.p12" ] && return 0
    mkdir -p "$tls"
    (
        cd "$tls"
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=visionlog test CA" \
            -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout broker.key -out broker.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >broker.ext
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
            -extfile broker.ext -out broker.pem 2>/dev/null
        openssl rand -hex 12 >store.password
        openssl rand -hex 16 >sasl.password
        openssl pkcs12 -export -in broker.pem -inkey broker.key -name broker \
            -passout "pass:$(cat store.password)" -out broker.p12
    )
}

kafka_config() {
    local dir="$RUN/kafka" port controller sasl tls store sasl_password
    port=$(port kafka)
    controller=$(port kafka-controller)
    sasl=$(port kafka-sasl)
    mkdir -p "$dir"
    kafka_tls
    tls="$dir/tls"
    store=$(cat "$tls/store.password")
    sasl_password=$(cat "$tls/sasl.password")
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller,SASL_SSL://127.0.0.1:$sasl
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls/broker.p12
ssl.keystore.password=$store
ssl.key.password=$store
ssl.client.auth=none
# ACLs, as a production cluster with several retailers has them: the PLAINTEXT and controller
# listeners (ANONYMOUS) and the SASL user are super users; every other principal (a retailer's
# SCRAM user) gets only what it is granted (integration-tests/retailer/grant.py)
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:$SASL_USER
allow.everyone.if.no.acl.found=false
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$sasl_password";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
message.max.bytes=${VISIONLOG_KAFKA_MESSAGE_MAX_BYTES:-1048588}
EOF
    cat >"$dir/log4j2.properties" <<EOF
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
EOF
}

kafka_up() {
    local dir="$RUN/kafka"
    running kafka && return 0
    kafka_config
    if [ ! -f "$dir/data/meta.properties" ]; then
        local cluster
        cluster=$(java -cp "$KAFKA_LIB/*" kafka.tools.StorageTool random-uuid)
        # the SCRAM user of the SASL listener is stored in the cluster's metadata from the start
        java -cp "$KAFKA_LIB/*" kafka.tools.StorageTool format -t "$cluster" -c "$dir/server.properties" \
            --add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$(cat "$dir/tls/sasl.password")]" >"$dir/format.out" 2>&1 ||
            { cat "$dir/format.out" >&2; exit 1; }
    fi
    log "starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$(port kafka)"
    nohup java -Xms256m -Xmx768m -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$KAFKA_LIB/*" \
        kafka.Kafka "$dir/server.properties" >"$RUN/kafka.out" 2>&1 </dev/null &
    echo $! >"$RUN/kafka.pid"
}

# A real request: a Metadata request (v1, all topics) answered with at least one broker, then a
# FindCoordinator request answered without error. The second creates the offsets topic on a new
# broker and waits until its coordinator has loaded: the first consumer group of a test must not
# meet a broker that is still setting itself up (tests then waited minutes for their groups).
kafka_answers() {
    python3 - "$(port kafka)" <<'PY'
import socket, struct, sys

def call(sock, api_key, version, correlation, body):
    client = b"engines"
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
    return sock.recv(size, socket.MSG_WAITALL)

s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
metadata = call(s, 3, 1, 7, struct.pack(">i", -1))
correlation, brokers = struct.unpack(">ii", metadata[:8])
if correlation != 7 or brokers < 1:
    sys.exit(1)
group = b"visionlog-engines-ready"
found = call(s, 10, 0, 8, struct.pack(">h", len(group)) + group)
correlation, error = struct.unpack(">ih", found[:6])
sys.exit(0 if correlation == 8 and error == 0 else 1)
PY
}

# ---- Apache Cassandra --------------------------------------------------------------------------

# The JVM options Cassandra 5.0 needs on Java 17 (its conf/jvm17-server.options), and a small heap.
cassandra_jvm_options() {
    local m
    for m in java.base/jdk.internal.misc java.base/jdk.internal.ref java.base/sun.nio.ch \
        java.management.rmi/com.sun.jmx.remote.internal.rmi java.rmi/sun.rmi.registry \
        java.rmi/sun.rmi.server java.sql/java.sql java.base/java.lang.ref jdk.unsupported/sun.misc; do
        printf -- '--add-exports\n%s=ALL-UNNAMED\n' "$m"
    done
    for m in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref \
        java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module \
        java.base/jdk.internal.util.jar jdk.management/com.sun.management.internal java.base/sun.nio.ch \
        java.base/java.io java.base/java.nio java.base/java.util.concurrent java.base/java.util \
        java.base/java.util.concurrent.atomic java.base/java.lang java.base/java.math \
        java.base/java.lang.reflect java.base/java.net; do
        printf -- '--add-opens\n%s=ALL-UNNAMED\n' "$m"
    done
    printf '%s\n' -Xms512m -Xmx1g -Xss512k -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
        -Djdk.attach.allowAttachSelf=true -Djava.net.preferIPv4Stack=true
}

cassandra_config() {
    local dir="$RUN/cassandra"
    mkdir -p "$dir/data"
    cat >"$dir/cassandra.yaml" <<EOF
cluster_name: visionlog-test
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
commitlog_sync: periodic
commitlog_sync_period: 10000ms
data_file_directories: [$dir/data/data]
commitlog_directory: $dir/data/commitlog
saved_caches_directory: $dir/data/saved_caches
hints_directory: $dir/data/hints
cdc_raw_directory: $dir/data/cdc_raw
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$(port cassandra-storage)"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $(port cassandra-storage)
native_transport_port: $(port cassandra)
endpoint_snitch: SimpleSnitch
start_native_transport: true
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
EOF
    cat >"$dir/logback.xml" <<EOF
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$dir/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
EOF
}

cassandra_up() {
    local dir="$RUN/cassandra"
    running cassandra && return 0
    cassandra_config
    log "starting Apache Cassandra $CASSANDRA_VERSION on 127.0.0.1:$(port cassandra)"
    local options=()
    mapfile -t options < <(cassandra_jvm_options)
    nohup java "${options[@]}" -Dcassandra.config="file://$dir/cassandra.yaml" -Dcassandra-foreground=yes \
        -Dcassandra.storagedir="$dir/data" -Dlogback.configurationFile="$dir/logback.xml" \
        -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.jmx.local.port="$(port cassandra-jmx)" \
        -cp "$CASSANDRA_LIB/*" org.apache.cassandra.service.CassandraDaemon >"$RUN/cassandra.out" 2>&1 </dev/null &
    echo $! >"$RUN/cassandra.pid"
}

# A real request: the native protocol's OPTIONS frame answered with SUPPORTED (CQL is served).
cassandra_answers() {
    python3 - "$(port cassandra)" <<'PY'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(struct.pack(">BBhBi", 0x04, 0, 1, 0x05, 0))  # v4 OPTIONS, stream 1
header = s.recv(9)
sys.exit(0 if len(header) == 9 and header[4] == 0x06 else 1)  # SUPPORTED
PY
}

# ---- the commands -----------------------------------------------------------------------------

print_env() {
    echo "KAFKA_BOOTSTRAP=127.0.0.1:$(port kafka)"
    echo "KAFKA_SASL_BOOTSTRAP=127.0.0.1:$(port kafka-sasl)"
    echo "KAFKA_SASL_CA=$RUN/kafka/tls/ca.pem"
    echo "KAFKA_SASL_USER=$SASL_USER"
    echo "KAFKA_SASL_PASSWORD=$(cat "$RUN/kafka/tls/sasl.password")"
    echo "SCYLLA_URI=scylla://127.0.0.1:$(port cassandra)/$KEYSPACE?replication=1"
}

up() {
    install
    mkdir -p "$RUN"
    kafka_up
    cassandra_up
    wait_for kafka 120 kafka_answers
    wait_for cassandra 180 cassandra_answers
    print_env | tee "$RUN/env"
}

stop() { # name, signal
    local pid_file="$RUN/$1.pid"
    if [ -s "$pid_file" ]; then
        local pid
        pid=$(cat "$pid_file")
        kill "-$2" "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$pid_file"
    fi
}

case "${1:-}" in
install) install ;;
up) up ;;
env)
    running kafka && running cassandra || { log "the engines are not up (scripts/engines.sh up)"; exit 1; }
    print_env
    ;;
kill)
    case "${2:-}" in
    kafka | cassandra) stop "$2" KILL ;;
    *) log "usage: $0 kill kafka|cassandra"; exit 2 ;;
    esac
    ;;
down)
    stop kafka TERM
    stop cassandra TERM
    rm -rf "$RUN"
    ;;
*)
    echo "usage: $0 install|up|env|kill NAME|down" >&2
    exit 2
    ;;
esac
