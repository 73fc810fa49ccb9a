//! Approval rules, in the spirit of a cloud patch manager's patch
//! baselines: rules match patches by classification, severity and product
//! and approve them at once, after some days, or leave them to a human;
//! explicit approve and reject lists override the rules. The canary rollout
//! starts only from an approval: it validates on top of approval, it never
//! bypasses it.

pub mod file;
pub mod rules;
pub mod submit;
