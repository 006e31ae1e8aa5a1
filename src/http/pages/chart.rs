//! Each node's queue over the last minutes as a small inline SVG chart,
//! drawn here for the first render (readable without JavaScript, no chart
//! library); `static/app.js` extends it from the event stream. Two lines:
//! hints queued (solid) and applied per second (dashed), each scaled to
//! its own peak, over the time the instance has watched the queue: at
//! least [`MIN_SPAN_MS`], at most [`HISTORY_MS`].

use serde_json::json;

use crate::domain::{HISTORY_MS, NodeView, QueuePoint, human_seconds, now_millis};
use crate::http::AppState;

/// The drawing area, in SVG user units (the page scales it).
pub const WIDTH: f64 = 300.0;
pub const HEIGHT: f64 = 60.0;
/// Space kept above and below the lines.
const PAD: f64 = 2.0;
/// The shortest time the x axis spans.
pub const MIN_SPAN_MS: i64 = 60_000;

/// What the template draws for one node.
pub struct QueueChart {
    /// `points` of the queued line.
    pub queued: String,
    /// `points` of the applied-per-second line.
    pub rate: String,
    /// The highest queue in the window (the top of the queued line).
    pub peak: u64,
    /// How far back the x axis reaches, in words ("last 1 min").
    pub span: String,
    /// The points as JSON, for the script to carry on from.
    pub history: String,
}

/// The nodes as the pages show them: the shared overview with each
/// node's chart.
pub async fn node_cards(state: &AppState) -> Vec<(NodeView, QueueChart)> {
    let now = now_millis();
    (state.monitor.current().await)
        .into_iter()
        .map(|view| {
            let chart = chart(&state.monitor.history(&view.node_id), now);
            (view, chart)
        })
        .collect()
}

/// The chart of `points` (oldest first) as of `now_ms`.
pub fn chart(points: &[QueuePoint], now_ms: i64) -> QueueChart {
    let peak = points.iter().map(|p| p.queued).max().unwrap_or(0);
    let peak_rate = points.iter().map(|p| p.rate).fold(0.0, f64::max);
    let span = points
        .first()
        .map_or(MIN_SPAN_MS, |p| now_ms - p.at_ms)
        .clamp(MIN_SPAN_MS, HISTORY_MS);
    let line = |value: &dyn Fn(&QueuePoint) -> f64, top: f64| -> String {
        (points.iter())
            .map(|p| format!("{:.1},{:.1}", x(p.at_ms, now_ms, span), y(value(p), top)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let history: Vec<_> = (points.iter())
        .map(|p| json!([p.at_ms, p.queued, (p.rate * 10.0).round() / 10.0]))
        .collect();
    QueueChart {
        queued: line(&|p| p.queued as f64, peak as f64),
        rate: line(&|p| p.rate, peak_rate),
        peak,
        span: format!("last {}", human_seconds(span as f64 / 1000.0)),
        history: serde_json::to_string(&history).unwrap_or_else(|_| "[]".into()),
    }
}

fn x(at_ms: i64, now_ms: i64, span: i64) -> f64 {
    let age = (now_ms - at_ms).clamp(0, span) as f64;
    WIDTH * (1.0 - age / span as f64)
}

fn y(value: f64, top: f64) -> f64 {
    let share = if top > 0.0 { value / top } else { 0.0 };
    HEIGHT - PAD - share * (HEIGHT - 2.0 * PAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_point_is_on_the_right_and_the_peak_on_top() {
        let points = [
            QueuePoint {
                at_ms: 0,
                queued: 0,
                rate: 0.0,
            },
            QueuePoint {
                at_ms: 150_000,
                queued: 400,
                rate: 0.0,
            },
            QueuePoint {
                at_ms: 300_000,
                queued: 100,
                rate: 50.0,
            },
        ];
        let c = chart(&points, 300_000);
        assert_eq!(c.queued, "0.0,58.0 150.0,2.0 300.0,44.0");
        assert_eq!(c.rate, "0.0,58.0 150.0,58.0 300.0,2.0");
        assert_eq!(c.peak, 400);
        assert_eq!(c.span, "last 5 min");
        assert_eq!(c.history, "[[0,0,0.0],[150000,400,0.0],[300000,100,50.0]]");
        assert_eq!(chart(&[], 5).queued, "");
        assert_eq!(chart(&points[2..], 310_000).span, "last 1 min");
    }
}
