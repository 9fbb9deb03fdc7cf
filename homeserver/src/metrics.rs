//! Prometheus metrics of one homeserver process.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    pub db_pool_connections: IntGaugeVec,
    pub db_pool_max: IntGauge,
    pub registered_users: IntGauge,
    pub messages_accepted: IntCounterVec,
    pub messages_rejected: IntCounterVec,
    pub key_package_claims: IntCounterVec,
    pub fanout_devices: Histogram,
    pub push_latency: Histogram,
    pub inbox_depth: IntGauge,
    pub federation_requests: IntCounterVec,
    pub federation_queue_depth: IntGaugeVec,
    pub federation_queue_oldest_age: GaugeVec,
    pub federation_destination_failures: IntGaugeVec,
    pub federation_send_latency: Histogram,
    pub federation_send_failures: IntCounterVec,
    pub federation_messages_received: IntCounterVec,
    pub wakeup_notifications: IntCounterVec,
    pub inbox_rechecks: IntCounter,
    pub inbox_recheck_wakeups: IntCounter,
    pub wakeup_relay_connected: IntGauge,
    pub wakeup_relay_peers: IntGauge,
    pub wakeup_relayed_entries: IntCounterVec,
    pub retention_swept_rows: IntCounterVec,
    pub retention_passes: IntCounterVec,
    pub transparency_epoch: IntGauge,
    pub transparency_published_users: IntCounter,
    pub transparency_audits: IntCounterVec,
    pub transparency_audit_failures: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("parley".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route template, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route template",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method"],
        )?;
        let db_pool_connections = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database pool connections by state (in_use, idle)",
            ),
            &["state"],
        )?;
        let db_pool_max = IntGauge::new("db_pool_max_connections", "Configured database pool size")?;
        let registered_users = IntGauge::new("registered_users", "Accounts registered on this server")?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_latency.clone()))?;
        registry.register(Box::new(db_pool_connections.clone()))?;
        registry.register(Box::new(db_pool_max.clone()))?;
        registry.register(Box::new(registered_users.clone()))?;
        let messages_accepted = IntCounterVec::new(
            Opts::new(
                "messages_accepted_total",
                "Messages accepted by the hub, by kind (commit, application)",
            ),
            &["kind"],
        )?;
        let messages_rejected = IntCounterVec::new(
            Opts::new("messages_rejected_total", "Group submissions refused, by error code"),
            &["reason"],
        )?;
        let fanout_devices = Histogram::with_opts(
            HistogramOpts::new("fanout_devices", "Local inboxes one accepted message was written to")
                .buckets(vec![0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 500.0, 1000.0]),
        )?;
        let push_latency = Histogram::with_opts(
            HistogramOpts::new(
                "push_latency_seconds",
                "From acceptance by the hub to delivery to a device",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
            ]),
        )?;
        let inbox_depth = IntGauge::new("inbox_depth", "Unacknowledged inbox entries of all devices")?;
        registry.register(Box::new(messages_accepted.clone()))?;
        registry.register(Box::new(messages_rejected.clone()))?;
        let key_package_claims = IntCounterVec::new(
            Opts::new(
                "key_package_claims_total",
                "KeyPackages claimed per device, by what the claim got: one_time, last_resort \
                 (none left), last_resort_over_budget (the claimer's or the device's hourly \
                 budget of one-time packages was used up), none",
            ),
            &["package"],
        )?;
        registry.register(Box::new(key_package_claims.clone()))?;
        registry.register(Box::new(fanout_devices.clone()))?;
        registry.register(Box::new(push_latency.clone()))?;
        registry.register(Box::new(inbox_depth.clone()))?;
        let federation_requests = IntCounterVec::new(
            Opts::new(
                "federation_requests_total",
                "Signed requests from other servers: \"authenticated\" or the error code they were refused with",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(federation_requests.clone()))?;
        let federation_queue_depth = IntGaugeVec::new(
            Opts::new(
                "federation_queue_depth",
                "Messages queued for another server, by destination",
            ),
            &["destination"],
        )?;
        let federation_queue_oldest_age = GaugeVec::new(
            Opts::new(
                "federation_queue_oldest_age_seconds",
                "Age of the oldest message queued for another server, by destination",
            ),
            &["destination"],
        )?;
        let federation_destination_failures = IntGaugeVec::new(
            Opts::new(
                "federation_destination_failures",
                "Consecutive failed sends to a destination (0: healthy); it backs off exponentially",
            ),
            &["destination"],
        )?;
        let federation_send_latency = Histogram::with_opts(
            HistogramOpts::new(
                "federation_send_seconds",
                "Time to send one transaction to another server and get its answer",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
            ]),
        )?;
        let federation_send_failures = IntCounterVec::new(
            Opts::new(
                "federation_send_failures_total",
                "Transactions another server did not take: \"unreachable\", or \"refused_<status>\"",
            ),
            &["reason"],
        )?;
        let federation_messages_received = IntCounterVec::new(
            Opts::new(
                "federation_messages_received_total",
                "Ordered messages received from hubs: \"stored\", \"duplicate\" or \"after_gap\"",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(federation_queue_depth.clone()))?;
        registry.register(Box::new(federation_queue_oldest_age.clone()))?;
        registry.register(Box::new(federation_destination_failures.clone()))?;
        registry.register(Box::new(federation_send_latency.clone()))?;
        registry.register(Box::new(federation_send_failures.clone()))?;
        registry.register(Box::new(federation_messages_received.clone()))?;
        let wakeup_notifications = IntCounterVec::new(
            Opts::new(
                "wakeup_notifications_total",
                "Inbox wake-ups exchanged with the other processes of this domain (PostgreSQL NOTIFY), by direction (sent, received)",
            ),
            &["direction"],
        )?;
        let wakeup_relay_connected = IntGauge::new(
            "wakeup_relay_connected",
            "1 while this process listens for other processes' inbox wake-ups; 0: their deliveries wait for the periodic re-check",
        )?;
        registry.register(Box::new(wakeup_notifications.clone()))?;
        let wakeup_relay_peers = IntGauge::new(
            "wakeup_relay_peers",
            "Other processes of this domain listening for inbox wake-ups (counted every 5 s); above 0, small new entries travel with the wake-up",
        )?;
        registry.register(Box::new(wakeup_relay_peers.clone()))?;
        let wakeup_relayed_entries = IntCounterVec::new(
            Opts::new(
                "wakeup_relayed_entries_total",
                "Inbox entries carried in wake-ups to or from the other processes of this domain (their readers push them without a database read), by direction (sent, received)",
            ),
            &["direction"],
        )?;
        registry.register(Box::new(wakeup_relayed_entries.clone()))?;
        let inbox_rechecks = IntCounter::new(
            "inbox_rechecks_total",
            "Rounds of the periodic inbox re-check (one query for all devices with a reader on this process)",
        )?;
        let inbox_recheck_wakeups = IntCounter::new(
            "inbox_recheck_wakeups_total",
            "Devices whose readers the periodic re-check woke because a wake-up for their entries was lost",
        )?;
        registry.register(Box::new(inbox_rechecks.clone()))?;
        registry.register(Box::new(inbox_recheck_wakeups.clone()))?;
        registry.register(Box::new(wakeup_relay_connected.clone()))?;
        let retention_swept_rows = IntCounterVec::new(
            Opts::new(
                "retention_swept_rows_total",
                "Rows the retention sweeper deleted, by table and rule",
            ),
            &["table", "rule"],
        )?;
        let retention_passes = IntCounterVec::new(
            Opts::new(
                "retention_passes_total",
                "Retention sweep passes of this process by outcome (swept, skipped: another process held the lock, failed)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(retention_swept_rows.clone()))?;
        registry.register(Box::new(retention_passes.clone()))?;
        let transparency_epoch = IntGauge::new(
            "transparency_epoch",
            "The latest published epoch of this server's key directory",
        )?;
        let transparency_published_users = IntCounter::new(
            "transparency_published_users_total",
            "User device lists published in this process's key directory epochs",
        )?;
        let transparency_audits = IntCounterVec::new(
            Opts::new(
                "transparency_audits_total",
                "Audits of other servers' key directories by outcome (ok, failed, unreachable)",
            ),
            &["outcome"],
        )?;
        let transparency_audit_failures = IntCounterVec::new(
            Opts::new(
                "transparency_audit_failures_total",
                "Failed audits of another server's key directory (a bad proof or signature, an epoch going backwards or missing, a split view), by server",
            ),
            &["server"],
        )?;
        registry.register(Box::new(transparency_epoch.clone()))?;
        registry.register(Box::new(transparency_published_users.clone()))?;
        registry.register(Box::new(transparency_audits.clone()))?;
        registry.register(Box::new(transparency_audit_failures.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_latency,
            db_pool_connections,
            db_pool_max,
            registered_users,
            messages_accepted,
            messages_rejected,
            key_package_claims,
            fanout_devices,
            push_latency,
            inbox_depth,
            federation_requests,
            federation_queue_depth,
            federation_queue_oldest_age,
            federation_destination_failures,
            federation_send_latency,
            federation_send_failures,
            federation_messages_received,
            wakeup_notifications,
            inbox_rechecks,
            inbox_recheck_wakeups,
            wakeup_relay_connected,
            wakeup_relay_peers,
            wakeup_relayed_entries,
            retention_swept_rows,
            retention_passes,
            transparency_epoch,
            transparency_published_users,
            transparency_audits,
            transparency_audit_failures,
        })
    }

    pub fn observe_pool(&self, status: deadpool_postgres::Status) {
        let in_use = status.size.saturating_sub(status.available);
        self.db_pool_connections
            .with_label_values(&["in_use"])
            .set(to_i64(in_use));
        self.db_pool_connections
            .with_label_values(&["idle"])
            .set(to_i64(status.available));
        self.db_pool_max.set(to_i64(status.max_size));
    }

    pub fn observe_federation_queues(&self, queues: &[crate::store::federation::QueueStats]) {
        for queue in queues {
            let labels = [queue.destination.as_str()];
            self.federation_queue_depth.with_label_values(&labels).set(queue.depth);
            self.federation_queue_oldest_age
                .with_label_values(&labels)
                .set(queue.oldest_age_secs);
            self.federation_destination_failures
                .with_label_values(&labels)
                .set(i64::from(queue.failures));
        }
    }

    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
