//! Results, their summary statistics, and the table and JSON lines printed
//! at the end. Every ratio compares rows of the same metric and placement.

/// Which direction is better for a metric.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// One measured (or unavailable) figure: a metric, where it ran, who ran it.
pub struct Row {
    pub metric: &'static str,
    pub placement: &'static str,
    pub subject: String,
    pub unit: &'static str,
    pub better: Better,
    /// One value per repetition (for latencies, the repetition's p50).
    pub values: Vec<f64>,
    /// Percentiles over every sample of every repetition (latencies only).
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// Why there is no figure ("n/a").
    pub na: Option<String>,
}

impl Row {
    pub fn new(
        metric: &'static str,
        placement: &'static str,
        subject: &str,
        unit: &'static str,
        better: Better,
    ) -> Row {
        Row {
            metric,
            placement,
            subject: subject.to_string(),
            unit,
            better,
            values: Vec::new(),
            p50: None,
            p99: None,
            na: None,
        }
    }

    /// A row of latency samples (microseconds), one vector per repetition.
    pub fn latency(
        metric: &'static str,
        placement: &'static str,
        subject: &str,
        reps: Vec<Vec<f64>>,
    ) -> Row {
        let mut row = Row::new(metric, placement, subject, "us", Better::Lower);
        let mut all: Vec<f64> = reps.iter().flatten().copied().collect();
        row.values = reps
            .into_iter()
            .map(|mut r| percentile(&mut r, 50.0))
            .collect();
        if !all.is_empty() {
            row.p50 = Some(percentile(&mut all, 50.0));
            row.p99 = Some(percentile(&mut all, 99.0));
        }
        row
    }

    /// A latency row from one repetition of samples, or "n/a" with `why`
    /// when the subject could not produce them.
    pub fn latency_or(
        metric: &'static str,
        placement: &'static str,
        subject: &str,
        samples: Option<Vec<f64>>,
        why: &str,
    ) -> Row {
        match samples {
            Some(v) => Row::latency(metric, placement, subject, vec![v]),
            None => Row::new(metric, placement, subject, "us", Better::Lower).unavailable(why),
        }
    }

    /// This row's figures as the floor of another metric (same placement
    /// and unit): its median, p50 and p99.
    pub fn floor_for(&self, metric: &'static str) -> Row {
        let mut floor = Row::new(metric, self.placement, "floor", self.unit, self.better)
            .values(vec![self.median().unwrap_or(f64::NAN)]);
        floor.p50 = self.p50;
        floor.p99 = self.p99;
        floor
    }

    pub fn values(mut self, values: Vec<f64>) -> Row {
        self.values = values;
        self
    }

    pub fn unavailable(mut self, why: impl Into<String>) -> Row {
        self.na = Some(why.into());
        self
    }

    /// The median of the per-repetition values; what ratios are taken of.
    pub fn median(&self) -> Option<f64> {
        if self.na.is_some() || self.values.is_empty() {
            return None;
        }
        let mut v = self.values.clone();
        Some(percentile(&mut v, 50.0))
    }

    fn min(&self) -> Option<f64> {
        self.median()?;
        self.values.iter().copied().reduce(f64::min)
    }

    fn max(&self) -> Option<f64> {
        self.median()?;
        self.values.iter().copied().reduce(f64::max)
    }
}

/// Nearest-rank percentile; sorts `v`.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// How many times `a` is better than `b` (above 1: `a` is better).
fn advantage(better: Better, a: f64, b: f64) -> f64 {
    match better {
        Better::Lower => b / a,
        Better::Higher => a / b,
    }
}

fn find<'a>(rows: &'a [Row], metric: &str, placement: &str, subject: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.metric == metric && r.placement == placement && r.subject == subject)
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.abs() >= 100_000.0 => format!("{:.3e}", x),
        Some(x) if x.abs() >= 100.0 => format!("{:.0}", x),
        Some(x) if x.abs() >= 10.0 => format!("{:.1}", x),
        Some(x) => format!("{:.2}", x),
    }
}

/// The ratio a row is judged by: to its floor (floor rows: none), and for
/// peers, billiard's advantage over them.
fn ratios(rows: &[Row], r: &Row) -> (Option<f64>, Option<f64>) {
    let median = r.median();
    let floor = find(rows, r.metric, r.placement, "floor").and_then(Row::median);
    let to_floor = match (r.subject.as_str(), median, floor) {
        ("floor", _, _) => None,
        (_, Some(m), Some(f)) => Some(m / f),
        _ => None,
    };
    let ours = find(rows, r.metric, r.placement, "billiard").and_then(Row::median);
    let vs_peer = match (r.subject.as_str(), median, ours) {
        ("floor" | "billiard", _, _) => None,
        (_, Some(m), Some(b)) => Some(advantage(r.better, b, m)),
        _ => None,
    };
    (to_floor, vs_peer)
}

/// Prints the table: one line per row, grouped by metric and placement.
pub fn print_table(rows: &[Row]) {
    println!(
        "{:<26} {:<9} {:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}  unit",
        "metric",
        "placement",
        "subject",
        "median",
        "min",
        "max",
        "p50",
        "p99",
        "x floor",
        "billiard+",
    );
    for r in rows {
        let (to_floor, vs_peer) = ratios(rows, r);
        if let Some(why) = &r.na {
            println!(
                "{:<26} {:<9} {:<16} n/a ({why})",
                r.metric, r.placement, r.subject
            );
            continue;
        }
        println!(
            "{:<26} {:<9} {:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}  {}",
            r.metric,
            r.placement,
            r.subject,
            fmt(r.median()),
            fmt(r.min()),
            fmt(r.max()),
            fmt(r.p50),
            fmt(r.p99),
            to_floor.map(|x| format!("{x:.2}x")).unwrap_or_default(),
            vs_peer.map(|x| format!("{x:.1}x")).unwrap_or_default(),
            r.unit,
        );
    }
    println!(
        "\nx floor: median / the floor's median (same metric, same placement).\n\
         billiard+: how many times better billiard's median is than that peer's."
    );
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "null".into(),
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Prints one JSON object per row.
pub fn print_json(rows: &[Row]) {
    for r in rows {
        let (to_floor, vs_peer) = ratios(rows, r);
        let values: Vec<String> = r.values.iter().map(|v| json_num(Some(*v))).collect();
        println!(
            "{{\"metric\":{},\"placement\":{},\"subject\":{},\"unit\":{},\"better\":{},\"median\":{},\"min\":{},\"max\":{},\"p50\":{},\"p99\":{},\"values\":[{}],\"ratio_to_floor\":{},\"billiard_advantage\":{},\"na\":{}}}",
            json_str(r.metric),
            json_str(r.placement),
            json_str(&r.subject),
            json_str(r.unit),
            json_str(if r.better == Better::Lower { "lower" } else { "higher" }),
            json_num(r.median()),
            json_num(r.min()),
            json_num(r.max()),
            json_num(r.p50),
            json_num(r.p99),
            values.join(","),
            json_num(to_floor),
            json_num(vs_peer),
            r.na.as_deref().map(json_str).unwrap_or_else(|| "null".into()),
        );
    }
}
