//! Charts as hand-written SVG (no script, no web font, nothing loaded from elsewhere): a bar
//! chart, a line chart and a heat map. Text uses the system's CJK sans font.

const FONT: &str = "font-family=\"'Noto Sans CJK SC','Noto Sans SC',sans-serif\"";

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars, one per (label, value), largest scale first.
pub fn bars(title: &str, items: &[(String, f64)]) -> String {
    let (w, row, left) = (640.0, 22.0, 220.0);
    let h = 40.0 + row * items.len() as f64;
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart bars\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" {FONT}>\
         <title>{}</title><text x=\"4\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        esc(title),
        esc(title)
    );
    for (i, (label, value)) in items.iter().enumerate() {
        let y = 30.0 + row * i as f64;
        let bw = (w - left - 60.0) * value / max;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
             <rect class=\"bar\" x=\"{left}\" y=\"{y}\" width=\"{bw:.1}\" height=\"{}\" fill=\"#3b6ea5\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            left - 6.0,
            y + 14.0,
            esc(label),
            row - 6.0,
            left + bw + 4.0,
            y + 14.0,
            crate::csv::number(*value)
        ));
    }
    s.push_str("</svg>");
    s
}

/// A line through (label, value) points, labels under the axis.
pub fn line(title: &str, points: &[(String, f64)]) -> String {
    let (w, h, pad) = (640.0, 240.0, 40.0);
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let n = points.len().max(2) as f64 - 1.0;
    let xy = |i: usize, v: f64| {
        (
            pad + (w - 2.0 * pad) * i as f64 / n,
            h - pad - (h - 2.0 * pad) * v / max,
        )
    };
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (x, y) = xy(i, p.1);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart line\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" {FONT}>\
         <title>{}</title><text x=\"4\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>\
         <polyline class=\"series\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"{pad}\" y=\"{}\" font-size=\"10\">{}</text>",
        esc(title),
        esc(title),
        h - pad,
        w - pad,
        h - pad,
        path.join(" "),
        pad - 8.0,
        crate::csv::number(max)
    );
    let step = (points.len() / 8).max(1);
    for (i, (label, _)) in points.iter().enumerate().step_by(step) {
        let (x, _) = xy(i, 0.0);
        s.push_str(&format!(
            "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            h - pad + 14.0,
            esc(label)
        ));
    }
    s.push_str("</svg>");
    s
}

/// A heat map of rows × columns; darker is more.
pub fn heat(
    title: &str,
    rows: &[String],
    cols: &[String],
    value: impl Fn(usize, usize) -> f64,
) -> String {
    let (cell, left, top) = (34.0, 200.0, 50.0);
    let w = left + cell * cols.len() as f64 + 10.0;
    let h = top + cell * rows.len() as f64 + 10.0;
    let mut max: f64 = 1.0;
    for r in 0..rows.len() {
        for c in 0..cols.len() {
            max = max.max(value(r, c));
        }
    }
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart heat\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" {FONT}>\
         <title>{}</title><text x=\"4\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        esc(title),
        esc(title)
    );
    for (c, label) in cols.iter().enumerate() {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            left + cell * c as f64 + cell / 2.0,
            top - 6.0,
            esc(label)
        ));
    }
    for (r, label) in rows.iter().enumerate() {
        let y = top + cell * r as f64;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + cell / 2.0 + 4.0,
            esc(label)
        ));
        for c in 0..cols.len() {
            let v = value(r, c);
            let shade = 0.1 + 0.9 * v / max;
            s.push_str(&format!(
                "<rect class=\"cell\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{}\" height=\"{}\" fill=\"#1f4e79\" fill-opacity=\"{shade:.2}\"><title>{}</title></rect>",
                left + cell * c as f64,
                cell - 2.0,
                cell - 2.0,
                crate::csv::number(v)
            ));
        }
    }
    s.push_str("</svg>");
    s
}
