//! Rate control: how many frames may go now so that the count sent follows `pps` from the
//! start (a schedule, not a per-frame delay, so that a late burst is made up for and the
//! average holds within a fraction of a percent at any rate), in bursts of at most `burst`.

use std::time::Duration;

pub struct Pacer {
    /// Frames a second; None: as fast as the ring takes them.
    pps: Option<f64>,
    burst: u64,
    /// Frames allowed so far.
    allowed: u64,
}

impl Pacer {
    pub fn new(pps: Option<f64>, burst: usize) -> Pacer {
        Pacer { pps: pps.filter(|p| *p > 0.0), burst: burst as u64, allowed: 0 }
    }

    /// Frames that may be sent at `elapsed` since the start (0 when ahead of the schedule).
    /// At most one burst at a time, and a backlog (the ring was full, the thread was
    /// preempted) is caught up burst by burst, not dropped.
    pub fn allow(&mut self, elapsed: Duration) -> usize {
        let Some(pps) = self.pps else { return self.burst as usize };
        let due = (elapsed.as_secs_f64() * pps) as u64 + 1;
        let n = due.saturating_sub(self.allowed).min(self.burst);
        self.allowed += n;
        n as usize
    }

    /// Gives back frames allowed but not sent (the ring took fewer).
    pub fn unsent(&mut self, n: usize) {
        self.allowed = self.allowed.saturating_sub(n as u64);
    }

    /// When the next frame is due (for a sleep when that is far): None when unpaced.
    pub fn next_due(&self) -> Option<Duration> {
        self.pps.map(|pps| Duration::from_secs_f64(self.allowed as f64 / pps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schedule on a simulated clock: over one second, `pps` frames within 0.1%.
    #[test]
    fn the_schedule_holds_the_rate_at_any_rate() {
        for pps in [10_000.0, 123_457.0, 1_000_000.0, 14_880_000.0] {
            let mut p = Pacer::new(Some(pps), 32);
            let mut sent = 0u64;
            // A caller polling every 700 ns.
            let mut t = Duration::ZERO;
            while t < Duration::from_secs(1) {
                sent += p.allow(t) as u64;
                t += Duration::from_nanos(700);
            }
            let err = (sent as f64 - pps).abs() / pps;
            assert!(err < 0.001 || pps > 1e7, "{pps}: {sent} sent, error {err}");
            if pps > 1e7 {
                // 32 frames per 700 ns poll is at most 45.7 Mpps: the schedule is met.
                assert!(err < 0.001, "{pps}: {sent}");
            }
        }
    }

    #[test]
    fn a_backlog_is_caught_up_burst_by_burst_and_unsent_frames_are_owed() {
        let mut p = Pacer::new(Some(1000.0), 32);
        // Late by 100 ms: 100 frames owed, one burst at a time.
        assert_eq!(p.allow(Duration::from_millis(100)), 32);
        assert_eq!(p.allow(Duration::from_millis(100)), 32);
        assert_eq!(p.allow(Duration::from_millis(100)), 32);
        assert_eq!(p.allow(Duration::from_millis(100)), 5);
        assert_eq!(p.allow(Duration::from_millis(100)), 0);
        p.unsent(3);
        assert_eq!(p.allow(Duration::from_millis(100)), 3);
        assert_eq!(Pacer::new(None, 32).allow(Duration::ZERO), 32, "unpaced: a burst every time");
    }
}
