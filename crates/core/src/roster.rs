//! The emergency-access roster's pure half (DESIGN "Emergency access roster"):
//! the HR export read into rows (file:line:column errors), SOLL — who may log in
//! today and by which rule or manual reason — and the reconciliation of SOLL
//! against IST (the emergency group's members) into joiners, leavers (with why),
//! movers and unmanaged members.
//!
//! Never reads files or talks to Microsoft Graph: the CSV text, the directory's
//! members and the roster's history are given; the engine does the I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::diag::{At, Diagnostics, Origin, Pos};

/// The HR export's columns, as the design names them (matched case-insensitively;
/// others are ignored).
pub const HR_COLUMNS: [&str; 7] = [
    "employeeId",
    "upn",
    "displayName",
    "department",
    "function",
    "startDate",
    "endDate",
];

/// One employee in the HR export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HrRow {
    /// The CSV line (for messages).
    pub line: u32,
    pub employee_id: String,
    pub upn: String,
    pub display_name: String,
    pub department: String,
    pub function: String,
    pub start: Date,
    pub end: Option<Date>,
}

impl HrRow {
    /// Employed on `today` (startDate <= today <= endDate).
    pub fn employed(&self, today: Date) -> bool {
        self.start <= today && self.end.is_none_or(|e| today <= e)
    }
}

/// `include`: who may use the emergency environment. An empty list is "any".
#[derive(Debug, Clone, Serialize)]
pub struct IncludeRule {
    pub department: Vec<String>,
    pub function: Vec<String>,
}

impl IncludeRule {
    fn has(list: &[String], value: &str) -> bool {
        list.is_empty()
            || list
                .iter()
                .any(|v| v.trim().eq_ignore_ascii_case(value.trim()))
    }

    pub fn matches(&self, row: &HrRow) -> bool {
        Self::has(&self.department, &row.department) && Self::has(&self.function, &row.function)
    }

    /// `include[0] (department SEH|IC, function arts|verpleegkundige)`.
    pub fn label(&self, index: usize) -> String {
        let mut parts = Vec::new();
        if !self.department.is_empty() {
            parts.push(format!("department {}", self.department.join("|")));
        }
        if !self.function.is_empty() {
            parts.push(format!("function {}", self.function.join("|")));
        }
        format!("include[{index}] ({})", parts.join(", "))
    }
}

/// A named addition with a reason and an expiry.
#[derive(Debug, Clone, Serialize)]
pub struct ManualEntry {
    pub upn: String,
    pub reason: String,
    pub expires: Date,
}

/// `spec.access.roster` of a tenant, with its HR export read.
#[derive(Debug, Clone, Serialize)]
pub struct Roster {
    /// The export's path as the manifest gives it (relative to the project).
    pub hr: At<String>,
    #[serde(skip)]
    pub hr_rows: Vec<HrRow>,
    pub include: Vec<IncludeRule>,
    pub manual: Vec<ManualEntry>,
}

/// Why someone is in SOLL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub upn: String,
    pub display_name: String,
    /// The rule label, or `manual: <reason> (until <date>)`.
    pub rule: String,
    pub department: String,
    pub function: String,
    /// Employed since (HR), or the manual entry's expiry for a manual one.
    pub since: Option<Date>,
}

fn key(upn: &str) -> String {
    upn.trim().to_ascii_lowercase()
}

impl Roster {
    /// SOLL on `today`, by lower-cased upn: employed rows matching a rule (the
    /// first rule that matches names it), then unexpired manual entries (which
    /// do not replace an HR grant).
    pub fn soll(&self, today: Date) -> BTreeMap<String, Grant> {
        let mut out = BTreeMap::new();
        for row in self.hr_rows.iter().filter(|r| r.employed(today)) {
            if let Some((i, rule)) = self
                .include
                .iter()
                .enumerate()
                .find(|(_, r)| r.matches(row))
            {
                out.entry(key(&row.upn)).or_insert_with(|| Grant {
                    upn: row.upn.clone(),
                    display_name: row.display_name.clone(),
                    rule: rule.label(i),
                    department: row.department.clone(),
                    function: row.function.clone(),
                    since: Some(row.start),
                });
            }
        }
        for m in self.manual.iter().filter(|m| today <= m.expires) {
            out.entry(key(&m.upn)).or_insert_with(|| Grant {
                upn: m.upn.clone(),
                display_name: m.upn.clone(),
                rule: format!("manual: {} (until {})", m.reason, m.expires),
                department: String::new(),
                function: String::new(),
                since: None,
            });
        }
        out
    }

    /// Why `upn` is not (or no longer) in SOLL, from what the export and the
    /// manual entries say; `None` when neither knows them.
    pub fn why_not(&self, upn: &str, today: Date) -> Option<String> {
        let k = key(upn);
        let rows: Vec<&HrRow> = self.hr_rows.iter().filter(|r| key(&r.upn) == k).collect();
        if let Some(r) = rows.iter().find(|r| r.employed(today)) {
            return Some(format!(
                "no longer matches (department {}, function {})",
                r.department, r.function
            ));
        }
        if let Some(end) = rows
            .iter()
            .filter_map(|r| r.end)
            .filter(|e| *e < today)
            .max()
        {
            return Some(format!("left on {end}"));
        }
        if let Some(start) = rows.iter().map(|r| r.start).find(|s| *s > today) {
            return Some(format!("not employed until {start}"));
        }
        self.manual
            .iter()
            .filter(|m| key(&m.upn) == k && m.expires < today)
            .map(|m| format!("manual entry expired on {}", m.expires))
            .next()
    }
}

/// A member of the emergency group as Microsoft Graph reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The directory object id.
    pub id: String,
    /// The hospital address the guest was invited with (`mail`).
    pub mail: String,
    pub account_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Joiner {
    pub upn: String,
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leaver {
    pub upn: String,
    pub why: String,
    #[serde(skip)]
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mover {
    pub upn: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmanaged {
    pub upn: String,
    #[serde(skip)]
    pub id: String,
}

/// One tenant's reconciliation.
#[derive(Debug, Clone, Serialize)]
pub struct TenantRoster {
    pub tenant: String,
    pub group: String,
    pub joiners: Vec<Joiner>,
    pub leavers: Vec<Leaver>,
    pub movers: Vec<Mover>,
    pub unmanaged: Vec<Unmanaged>,
    pub members_after: usize,
    pub max_users: u32,
    /// SOLL, for the attestation report and the audit records.
    #[serde(skip)]
    pub soll: BTreeMap<String, Grant>,
}

impl TenantRoster {
    pub fn changes(&self) -> usize {
        self.joiners.len() + self.leavers.len() + self.movers.len() + self.unmanaged.len()
    }
}

/// More people qualify than `maxUsers`: nothing is applied.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "tenant {tenant}: {qualify} people qualify for the emergency group but maxUsers is {max}: {} over ({})",
    .excess.len(),
    .excess.join(", ")
)]
pub struct OverCapacity {
    pub tenant: String,
    pub qualify: usize,
    pub max: u32,
    /// The joiners that do not fit (the last ones by upn), named.
    pub excess: Vec<String>,
}

/// What reconciling needs besides the roster.
pub struct Ist<'a> {
    pub members: &'a [Member],
    /// Who lifeboat added and has not removed (from the audit trail), with the
    /// grant they were added under: their departure is a leaver, anyone else in
    /// the group outside SOLL is unmanaged.
    pub managed: &'a BTreeMap<String, Grant>,
}

/// SOLL against IST for one tenant.
pub fn reconcile(
    tenant: &str,
    group: &str,
    roster: &Roster,
    max_users: u32,
    today: Date,
    ist: Ist<'_>,
    keep_unmanaged: bool,
) -> Result<TenantRoster, OverCapacity> {
    let soll = roster.soll(today);
    let present: BTreeMap<String, &Member> =
        ist.members.iter().map(|m| (key(&m.mail), m)).collect();
    let mut out = TenantRoster {
        tenant: tenant.to_string(),
        group: group.to_string(),
        joiners: Vec::new(),
        leavers: Vec::new(),
        movers: Vec::new(),
        unmanaged: Vec::new(),
        members_after: 0,
        max_users,
        soll: BTreeMap::new(),
    };
    for (k, g) in &soll {
        match present.get(k) {
            // A disabled guest in the group does not have access: re-admitted.
            Some(m) if m.account_enabled => {
                if let Some(before) = ist.managed.get(k)
                    && (before.rule != g.rule
                        || !before.department.eq_ignore_ascii_case(&g.department)
                        || !before.function.eq_ignore_ascii_case(&g.function))
                {
                    out.movers.push(Mover {
                        upn: g.upn.clone(),
                        from: describe(before),
                        to: describe(g),
                    });
                }
            }
            _ => out.joiners.push(Joiner {
                upn: g.upn.clone(),
                rule: g.rule.clone(),
            }),
        }
    }
    for (k, m) in &present {
        if soll.contains_key(k) {
            continue;
        }
        let why = roster.why_not(&m.mail, today).or_else(|| {
            ist.managed
                .contains_key(k)
                .then(|| "no longer in the HR export".to_string())
        });
        match why {
            Some(why) => out.leavers.push(Leaver {
                upn: m.mail.clone(),
                why,
                id: m.id.clone(),
            }),
            None => out.unmanaged.push(Unmanaged {
                upn: m.mail.clone(),
                id: m.id.clone(),
            }),
        }
    }
    if soll.len() > max_users as usize {
        let mut excess: BTreeSet<String> = out.joiners.iter().map(|j| j.upn.clone()).collect();
        let over = soll.len() - max_users as usize;
        while excess.len() > over {
            let first = excess.iter().next().cloned().expect("non-empty");
            excess.remove(&first);
        }
        return Err(OverCapacity {
            tenant: tenant.to_string(),
            qualify: soll.len(),
            max: max_users,
            excess: if excess.is_empty() {
                soll.values()
                    .rev()
                    .take(over)
                    .map(|g| g.upn.clone())
                    .collect()
            } else {
                excess.into_iter().collect()
            },
        });
    }
    out.members_after = soll.len()
        + if keep_unmanaged {
            out.unmanaged.len()
        } else {
            0
        };
    out.soll = soll;
    Ok(out)
}

fn describe(g: &Grant) -> String {
    if g.department.is_empty() && g.function.is_empty() {
        g.rule.clone()
    } else {
        format!("{} / {} by {}", g.department, g.function, g.rule)
    }
}

/// Read an HR export: a header row, comma or semicolon separated (the header
/// decides), UTF-8 with or without BOM, `"quoted"` fields with `""` for a quote.
/// Every problem is a diagnostic at its line and column, with the column name
/// as the field.
pub fn parse_hr(file: &Arc<PathBuf>, text: &str) -> Result<Vec<HrRow>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let at = |line: usize, col: usize, field: &str| {
        Origin::new(
            file,
            Pos {
                line: line as u32,
                column: col as u32,
            },
            field,
        )
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((hl, header)) = lines.next() else {
        diags.push(
            at(1, 1, "header"),
            "the HR export is empty: a header row is required",
        );
        return Err(diags);
    };
    let sep = if header.contains(';') && !header.contains(',') {
        ';'
    } else {
        ','
    };
    let head = match split(header, sep) {
        Ok(h) => h,
        Err((col, msg)) => {
            diags.push(at(hl + 1, col, "header"), msg);
            return Err(diags);
        }
    };
    let mut index = [usize::MAX; 7];
    for (i, want) in HR_COLUMNS.iter().enumerate() {
        match head
            .iter()
            .position(|(_, h)| h.trim().eq_ignore_ascii_case(want))
        {
            Some(p) => index[i] = p,
            None => diags.push(
                at(hl + 1, 1, want),
                format!(
                    "the HR export has no `{want}` column (required: {}; separator `{sep}`)",
                    HR_COLUMNS.join(", ")
                ),
            ),
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut rows = Vec::new();
    for (l, line) in lines {
        let n = l + 1;
        let cells = match split(line, sep) {
            Ok(c) => c,
            Err((col, msg)) => {
                diags.push(at(n, col, "row"), msg);
                continue;
            }
        };
        let cell = |i: usize| -> (usize, String) {
            cells
                .get(index[i])
                .map(|(c, v)| (*c, v.trim().to_string()))
                .unwrap_or((line.chars().count() + 1, String::new()))
        };
        let mut bad = false;
        let mut required = |i: usize, diags: &mut Diagnostics| {
            let (col, v) = cell(i);
            if v.is_empty() {
                diags.push(
                    at(n, col, HR_COLUMNS[i]),
                    format!("`{}` is empty", HR_COLUMNS[i]),
                );
                bad = true;
            }
            (col, v)
        };
        let (_, employee_id) = required(0, &mut diags);
        let (ucol, upn) = required(1, &mut diags);
        let (_, display_name) = required(2, &mut diags);
        let (_, department) = required(3, &mut diags);
        let (_, function) = required(4, &mut diags);
        let (scol, start) = required(5, &mut diags);
        let (ecol, end) = cell(6);
        if !upn.is_empty() && !looks_like_email(&upn) {
            diags.push(
                at(n, ucol, "upn"),
                format!("`{upn}` is not an address like name@hospital.nl"),
            );
            bad = true;
        }
        let date =
            |col: usize, v: &str, field: &str, diags: &mut Diagnostics| match v.parse::<Date>() {
                Ok(d) => Some(d),
                Err(_) => {
                    diags.push(
                        at(n, col, field),
                        format!("`{v}` is not a date like 2026-03-01"),
                    );
                    None
                }
            };
        let start = if start.is_empty() {
            None
        } else {
            date(scol, &start, "startDate", &mut diags)
        };
        let end = if end.is_empty() {
            Ok(None)
        } else {
            date(ecol, &end, "endDate", &mut diags).map(Some).ok_or(())
        };
        match (start, end) {
            (Some(start), Ok(end)) if !bad => rows.push(HrRow {
                line: n as u32,
                employee_id,
                upn,
                display_name,
                department,
                function,
                start,
                end,
            }),
            _ => {}
        }
    }
    if diags.is_empty() {
        Ok(rows)
    } else {
        Err(diags)
    }
}

fn looks_like_email(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(d), None)
        if !a.is_empty() && d.contains('.') && !s.chars().any(|c| c.is_whitespace() || c.is_control()))
}

/// One CSV line into (1-based column, value) cells; an unterminated quote is an
/// error at its column.
fn split(line: &str, sep: char) -> Result<Vec<(usize, String)>, (usize, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let col = i + 1;
        let mut value = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err((col, "a quoted value is not closed (`\"` missing)".into()));
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        value.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
            match chars.get(i) {
                None => {}
                Some(c) if *c == sep => {}
                Some(_) => {
                    return Err((i + 1, format!("expected `{sep}` after a quoted value")));
                }
            }
        } else {
            while let Some(c) = chars.get(i) {
                if *c == sep {
                    break;
                }
                value.push(*c);
                i += 1;
            }
        }
        out.push((col, value));
        if chars.get(i) == Some(&sep) {
            i += 1;
        } else {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<PathBuf> {
        Arc::new(PathBuf::from("hr/cwz.csv"))
    }

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    const HR: &str = "\u{feff}employeeId;upn;displayName;department;function;startDate;endDate;costCentre\n\
        1;a.arts@cwz.nl;A. Arts;SEH;arts;2020-01-01;;X\n\
        2;b.verp@cwz.nl;\"B; Verpleeg\";IC;Verpleegkundige ;2021-05-01;;X\n\
        3;c.weg@cwz.nl;C. Weg;SEH;arts;2019-01-01;2026-11-30;X\n\
        4;d.admin@cwz.nl;D. Admin;Finance;controller;2019-01-01;;X\n\
        5;e.apo@cwz.nl;E. Apo;Apotheek;apotheker;2027-01-01;;X\n";

    fn roster() -> Roster {
        Roster {
            hr: At {
                value: "hr/cwz.csv".into(),
                origin: Origin::new(&file(), Pos { line: 1, column: 1 }, "spec.access.roster.hr"),
            },
            hr_rows: parse_hr(&file(), HR).unwrap(),
            include: vec![
                IncludeRule {
                    department: vec!["SEH".into(), "IC".into()],
                    function: vec!["arts".into(), "verpleegkundige".into()],
                },
                IncludeRule {
                    department: vec![],
                    function: vec!["apotheker".into()],
                },
            ],
            manual: vec![
                ManualEntry {
                    upn: "k.bakker@cwz.nl".into(),
                    reason: "ICT on-call".into(),
                    expires: d("2027-03-01"),
                },
                ManualEntry {
                    upn: "old@cwz.nl".into(),
                    reason: "audit".into(),
                    expires: d("2026-01-01"),
                },
            ],
        }
    }

    #[test]
    fn semicolons_bom_quotes_and_unknown_columns() {
        let rows = parse_hr(&file(), HR).unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[1].display_name, "B; Verpleeg");
        assert_eq!(rows[1].function, "Verpleegkundige");
        assert_eq!(rows[2].end, Some(d("2026-11-30")));
        assert_eq!(rows[0].line, 2);
    }

    #[test]
    fn bad_rows_name_line_column_and_field() {
        let text = "employeeId,upn,displayName,department,function,startDate,endDate\n\
            1,a@cwz.nl,A,SEH,arts,2020-13-01,\n\
            2,not-an-address,B,IC,arts,2020-01-01,\n\
            3,\"c@cwz.nl,C,IC,arts,2020-01-01,\n";
        let e = parse_hr(&file(), text).unwrap_err().to_string();
        assert!(
            e.contains("hr/cwz.csv:2:23") && e.contains("startDate"),
            "{e}"
        );
        assert!(e.contains("hr/cwz.csv:3:3") && e.contains("upn"), "{e}");
        assert!(
            e.contains("hr/cwz.csv:4:3") && e.contains("not closed"),
            "{e}"
        );
        let missing = parse_hr(&file(), "employeeId,upn,displayName\n1,a@b.nl,A\n")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("no `department` column"), "{missing}");
    }

    #[test]
    fn soll_is_employed_and_matching_plus_unexpired_manual() {
        let soll = roster().soll(d("2026-12-06"));
        let upns: Vec<&str> = soll.values().map(|g| g.upn.as_str()).collect();
        assert_eq!(upns, ["a.arts@cwz.nl", "b.verp@cwz.nl", "k.bakker@cwz.nl"]);
        assert!(soll["a.arts@cwz.nl"].rule.starts_with("include[0]"));
        assert!(soll["k.bakker@cwz.nl"].rule.contains("ICT on-call"));
    }

    #[test]
    fn joiners_leavers_with_why_movers_and_unmanaged() {
        let r = roster();
        let today = d("2026-12-06");
        let m = |mail: &str| Member {
            id: format!("id-{mail}"),
            mail: mail.into(),
            account_enabled: true,
        };
        let members = [
            m("a.arts@cwz.nl"),
            m("c.weg@cwz.nl"),
            m("d.admin@cwz.nl"),
            m("old@cwz.nl"),
            m("gone@cwz.nl"),
            m("hand@cwz.nl"),
        ];
        let mut managed = BTreeMap::new();
        let mut before = r.soll(today)["a.arts@cwz.nl"].clone();
        before.department = "IC".into();
        managed.insert("a.arts@cwz.nl".to_string(), before);
        let gone = Grant {
            upn: "gone@cwz.nl".into(),
            display_name: "G".into(),
            rule: "include[0] (x)".into(),
            department: "SEH".into(),
            function: "arts".into(),
            since: None,
        };
        managed.insert("gone@cwz.nl".to_string(), gone);
        let t = reconcile(
            "cwz",
            "lb-cwz-emergency",
            &r,
            20,
            today,
            Ist {
                members: &members,
                managed: &managed,
            },
            false,
        )
        .unwrap();
        let j: Vec<&str> = t.joiners.iter().map(|j| j.upn.as_str()).collect();
        assert_eq!(j, ["b.verp@cwz.nl", "k.bakker@cwz.nl"]);
        let why: BTreeMap<&str, &str> = t
            .leavers
            .iter()
            .map(|l| (l.upn.as_str(), l.why.as_str()))
            .collect();
        assert_eq!(why["c.weg@cwz.nl"], "left on 2026-11-30");
        assert!(why["d.admin@cwz.nl"].starts_with("no longer matches"));
        assert_eq!(why["old@cwz.nl"], "manual entry expired on 2026-01-01");
        assert_eq!(why["gone@cwz.nl"], "no longer in the HR export");
        assert_eq!(
            t.unmanaged
                .iter()
                .map(|u| u.upn.as_str())
                .collect::<Vec<_>>(),
            ["hand@cwz.nl"]
        );
        assert_eq!(t.movers.len(), 1);
        assert!(t.movers[0].from.starts_with("IC /"), "{:?}", t.movers);
        assert_eq!(t.members_after, 3);
    }

    #[test]
    fn more_than_max_users_names_the_excess() {
        let e = reconcile(
            "cwz",
            "g",
            &roster(),
            2,
            d("2026-12-06"),
            Ist {
                members: &[],
                managed: &BTreeMap::new(),
            },
            false,
        )
        .unwrap_err();
        assert_eq!(e.qualify, 3);
        assert_eq!(e.excess, ["k.bakker@cwz.nl"]);
        assert!(
            e.to_string()
                .contains("maxUsers is 2: 1 over (k.bakker@cwz.nl)")
        );
    }
}
