# The Prosody both XMPP benchmarks run (run.sh, ramp.sh), sourced by them. Needs DOMAIN and
# MUC set.
#
# write_prosody_config DIR PORT [MUC-LINE...]: DIR/prosody.cfg.lua for a Prosody on
# 127.0.0.1:PORT with the certificate DIR/cert.pem and DIR/key.pem, data in DIR/data; each
# MUC-LINE is added to the MUC component.
write_prosody_config() {
    local p="$1" port="$2" line extra=""
    shift 2
    for line in "$@"; do extra+="    $line"$'\n'; done
    cat >"$p/prosody.cfg.lua" <<LUA
-- written by bench/xmpp/prosody.sh
pidfile = "$p/prosody.pid"
data_path = "$p/data"
daemonize = false
interfaces = { "127.0.0.1" }
c2s_ports = { $port }
c2s_direct_tls_ports = { }
s2s_ports = { }
http_ports = { }
https_ports = { }
modules_disabled = { "s2s" }
log = { warn = "$p/prosody.log" }
ssl = { certificate = "$p/cert.pem"; key = "$p/key.pem" }
c2s_require_encryption = true
authentication = "internal_hashed"
-- PBKDF2 iterations of the stored verifiers: 4096 as perch's (SCRAM_ITERATIONS), not
-- Prosody's default 10000, so that a PLAIN sign-in costs both servers the same hashing
default_iteration_count = 4096
storage = "internal"
-- Prosody's epoll backend, as Debian ships it
network_backend = "epoll"
-- no limits module (mod_limits) is loaded: c2s is not rate-limited
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix"; "admin_shell" }
VirtualHost "$DOMAIN"
Component "$MUC" "muc"
    -- perch keeps every post: Prosody archives the room too (muc_mam, internal storage)
    modules_enabled = { "muc_mam" }
    muc_log_all_rooms = true
    muc_room_default_persistent = true
    muc_room_locking = false
$extra
LUA
}
