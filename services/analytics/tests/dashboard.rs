//! The Grafana dashboard charts only series this service exports.

#[test]
fn the_dashboard_uses_the_exported_gauges() {
    let dashboard = include_str!("../../../deploy/grafana/analytics-dashboard.json");
    let gauges = include_str!("../src/gauges.rs");
    let mut used = 0;
    for (i, _) in dashboard.match_indices("redress_analytics_") {
        let name: String = dashboard[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            gauges.contains(&format!("\"{name}\"")),
            "{name} is not exported"
        );
        used += 1;
    }
    assert!(used >= 3, "the dashboard charts the gauges");
}
