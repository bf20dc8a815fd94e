//! Whose face is analysed: the customer, never the clerk beside them.
//!
//! [`CustomerPolicy`] (`vision.customer`) chooses among the faces the detector finds:
//! `"largest"` (the default; faces within 10 % of the same size go to the more central one),
//! `"most_central"`, or `{ region = [x0, y0, x1, y1] }` (normalised frame coordinates; the largest
//! face whose box centre lies inside). With a region, a face whose centre lies outside is never
//! scored, tracked or stored — also while tracking: a tracked face that moves out is dropped.
//!
//! [`CustomerTracker`] keeps to the chosen person: while the customer was seen less than
//! `vision.customer_gap_s` ago, re-detection only accepts a face near where they were (it never
//! jumps to another face, however large); once they have been gone longer, the next face chosen
//! by the policy is a **new customer** (the per-customer number goes up, and the interval window
//! resets its per-customer state). Nothing about a face is kept but its box centre, size and the
//! media time it was last seen: there is no face recognition, no embedding, no crop.

use super::detect::Detection;
use serde::{Deserialize, Serialize};

/// Which face is the customer (`vision.customer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CustomerPolicy {
    /// The largest face; faces within 10 % of the same size go to the one nearest the centre.
    #[default]
    Largest,
    /// The face whose centre is nearest the frame centre.
    MostCentral,
    /// Only faces whose box centre lies in `[x0, y0, x1, y1]` (fractions of the frame width and
    /// height, 0 to 1); among them the largest.
    Region([f64; 4]),
}

impl CustomerPolicy {
    /// Checks a region's coordinates; `Err` says what is allowed.
    pub fn check(&self) -> std::result::Result<(), String> {
        if let CustomerPolicy::Region([x0, y0, x1, y1]) = *self {
            let ok = [x0, y0, x1, y1].iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v));
            if !ok || x0 >= x1 || y0 >= y1 {
                return Err("allowed: \"largest\", \"most_central\" or { region = [x0, y0, x1, y1] } with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (fractions of the frame width and height)".into());
            }
        }
        Ok(())
    }

    /// True when a face centred at (`cx`, `cy`) pixels of a `w`×`h` frame may be the customer.
    pub fn admits(&self, cx: f32, cy: f32, w: usize, h: usize) -> bool {
        match *self {
            CustomerPolicy::Region([x0, y0, x1, y1]) => {
                let (u, v) = (cx as f64 / w.max(1) as f64, cy as f64 / h.max(1) as f64);
                (x0..=x1).contains(&u) && (y0..=y1).contains(&v)
            }
            _ => true,
        }
    }

    /// The customer among `faces` by this policy alone (no history).
    pub fn pick<'a>(&self, faces: &'a [Detection], w: usize, h: usize) -> Option<&'a Detection> {
        let admitted: Vec<&Detection> =
            faces.iter().filter(|d| self.admits(d.center().0, d.center().1, w, h)).collect();
        let (fcx, fcy) = (w as f32 / 2.0, h as f32 / 2.0);
        let dist = |d: &Detection| ((d.center().0 - fcx).powi(2) + (d.center().1 - fcy).powi(2)).sqrt();
        match self {
            CustomerPolicy::MostCentral => admitted.into_iter().min_by(|a, b| dist(a).total_cmp(&dist(b))),
            CustomerPolicy::Largest | CustomerPolicy::Region(_) => admitted.into_iter().max_by(|a, b| {
                // Areas within 10 % count as equal; then the more central wins.
                if (a.area() - b.area()).abs() <= 0.1 * a.area().max(b.area()) {
                    dist(b).total_cmp(&dist(a))
                } else {
                    a.area().total_cmp(&b.area())
                }
            }),
        }
    }
}

impl std::fmt::Display for CustomerPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CustomerPolicy::Largest => write!(f, "\"largest\""),
            CustomerPolicy::MostCentral => write!(f, "\"most_central\""),
            CustomerPolicy::Region([x0, y0, x1, y1]) => write!(f, "{{ region = [{x0}, {y0}, {x1}, {y1}] }}"),
        }
    }
}

/// Where the customer was last seen (frame pixels, media time). Nothing else is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    cx: f32,
    cy: f32,
    size: f32,
    t: f64,
}

/// Keeps to the chosen customer across frames and counts customers (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct CustomerTracker {
    policy: CustomerPolicy,
    gap_s: f64,
    last: Option<Seen>,
    number: u64,
}

impl CustomerTracker {
    /// A tracker choosing by `policy`; a customer unseen for more than `gap_s` media seconds has left.
    pub fn new(policy: CustomerPolicy, gap_s: f64) -> Self {
        CustomerTracker { policy, gap_s, last: None, number: 0 }
    }

    /// The policy.
    pub fn policy(&self) -> &CustomerPolicy {
        &self.policy
    }

    /// Customers seen so far (the current one's number).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Forgets the current customer: the next face is a new one.
    pub fn forget(&mut self) {
        self.last = None;
    }

    fn recent(&self, t: f64) -> Option<Seen> {
        self.last.filter(|s| t - s.t <= self.gap_s)
    }

    /// The face to score among a detector run's `faces` at media time `t`: while the customer
    /// was seen within the gap, only a face near their last position (centre within one face
    /// size); otherwise the policy's choice. Faces the policy does not admit are never returned.
    pub fn choose<'a>(&self, faces: &'a [Detection], w: usize, h: usize, t: f64) -> Option<&'a Detection> {
        match self.recent(t) {
            None => self.policy.pick(faces, w, h),
            Some(s) => faces
                .iter()
                .filter(|d| self.policy.admits(d.center().0, d.center().1, w, h))
                .map(|d| (d, ((d.center().0 - s.cx).powi(2) + (d.center().1 - s.cy).powi(2)).sqrt()))
                .filter(|(d, dist)| *dist <= s.size.max(d.w.max(d.h)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(d, _)| d),
        }
    }

    /// Records the customer's face (landmark box `[x, y, w, h]` in pixels) at media time `t`;
    /// returns (customer number, whether this face starts a new customer).
    pub fn seen(&mut self, bbox: [f32; 4], t: f64) -> (u64, bool) {
        let new = self.recent(t).is_none();
        if new {
            self.number += 1;
        }
        let [x, y, w, h] = bbox;
        self.last = Some(Seen { cx: x + w / 2.0, cy: y + h / 2.0, size: w.max(h), t });
        (self.number, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, w: f32, h: f32) -> Detection {
        Detection { x, y, w, h, score: 0.9, keypoints: [(x, y); 6] }
    }

    #[test]
    fn largest_then_most_central() {
        let faces = vec![det(0.0, 0.0, 20.0, 20.0), det(40.0, 40.0, 30.0, 30.0), det(80.0, 80.0, 10.0, 10.0)];
        assert_eq!(CustomerPolicy::Largest.pick(&faces, 100, 100).unwrap().w, 30.0);
        let similar = vec![det(0.0, 0.0, 30.0, 30.0), det(35.0, 35.0, 29.0, 29.0)];
        assert_eq!(CustomerPolicy::Largest.pick(&similar, 100, 100).unwrap().x, 35.0);
        let off_centre_big = vec![det(0.0, 0.0, 40.0, 40.0), det(45.0, 45.0, 10.0, 10.0)];
        assert_eq!(CustomerPolicy::MostCentral.pick(&off_centre_big, 100, 100).unwrap().w, 10.0);
        assert!(CustomerPolicy::Largest.pick(&[], 100, 100).is_none());
    }

    #[test]
    fn a_region_excludes_faces_centred_outside_it() {
        let faces = vec![det(0.0, 0.0, 40.0, 40.0), det(70.0, 20.0, 20.0, 20.0)];
        let right_half = CustomerPolicy::Region([0.5, 0.0, 1.0, 1.0]);
        assert_eq!(right_half.pick(&faces, 100, 100).unwrap().x, 70.0);
        let nowhere = CustomerPolicy::Region([0.9, 0.9, 1.0, 1.0]);
        assert!(nowhere.pick(&faces, 100, 100).is_none());
        assert!(right_half.admits(75.0, 10.0, 100, 100) && !right_half.admits(20.0, 10.0, 100, 100));
    }

    #[test]
    fn region_coordinates_are_checked() {
        assert!(CustomerPolicy::Region([0.0, 0.0, 1.0, 1.0]).check().is_ok());
        for bad in
            [[0.5, 0.0, 0.5, 1.0], [0.0, 0.0, 1.5, 1.0], [-0.1, 0.0, 1.0, 1.0], [0.0, f64::NAN, 1.0, 1.0]]
        {
            let e = CustomerPolicy::Region(bad).check().unwrap_err();
            assert!(e.contains("0 <= x0 < x1 <= 1"), "{e}");
        }
    }

    #[test]
    fn redetection_keeps_to_the_customer_until_they_have_left() {
        let mut tr = CustomerTracker::new(CustomerPolicy::Largest, 2.0);
        let small = det(10.0, 10.0, 20.0, 20.0);
        let big = det(60.0, 10.0, 35.0, 35.0);
        // Only the small face at first: it is customer 1.
        let c = tr.choose(std::slice::from_ref(&small), 100, 100, 0.0).unwrap().clone();
        assert_eq!(tr.seen([c.x, c.y, c.w, c.h], 0.0), (1, true));
        assert_eq!(tr.seen([c.x + 2.0, c.y, c.w, c.h], 0.1), (1, false));
        // A larger face appears: re-detection stays with the customer.
        let both = vec![small.clone(), big.clone()];
        assert_eq!(tr.choose(&both, 100, 100, 0.5).unwrap().x, 10.0);
        // The customer is briefly lost: no jump to the other face.
        assert!(tr.choose(std::slice::from_ref(&big), 100, 100, 1.0).is_none());
        // Gone longer than the gap: the other face is a new customer.
        let c = tr.choose(std::slice::from_ref(&big), 100, 100, 2.5).unwrap().clone();
        assert_eq!(c.x, 60.0);
        assert_eq!(tr.seen([c.x, c.y, c.w, c.h], 2.5), (2, true));
        tr.forget();
        assert_eq!(tr.seen([c.x, c.y, c.w, c.h], 2.6), (3, true));
        assert_eq!(tr.number(), 3);
    }
}
