//! The subset of Azure Resource Graph's query language (KQL) that lifeboat sends,
//! and the tables and row shape ARG has (`shared/azure/resource-graph-coverage.md`):
//! `resources` holds top-level resources and a few indexed children (gallery
//! images and versions, VM extensions); `resourcecontainers` holds resource
//! groups, typed `microsoft.resources/subscriptions/resourcegroups`;
//! `authorizationresources` holds role assignments and cannot be unioned with the
//! other two. Subnets, NSG rules and peerings appear only inside their parent's
//! row; Key Vault keys and secrets, blob services, containers and diagnostic
//! settings are not indexed at all. Supported: `| where` with `and`, `or`,
//! parentheses, `==`, `=~`, `!=`, `!~`, `in~ (...)`, `startswith`, and
//! `isempty`/`isnotempty`/`isnull`/`isnotnull(...)`, on `id`, `name`, `type`,
//! `location`, `resourceGroup`, `subscriptionId`, `managedBy`, `tags['k']` /
//! `tags.k` and `properties.a.b`; `| project` of columns; `| order by id`.
//! Anything else is an error, as a real ARG would give for a typo.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::store::StoredResource;

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Cmp {
        field: String,
        op: Op,
        values: Vec<String>,
    },
    /// `isempty(field)` and its kin.
    Test {
        field: String,
        test: Test,
    },
    True,
}

/// As Microsoft documents Kusto's `isempty` and `isnull`: a string is never
/// null (`isnull("")` is false), `isempty` is true of null and of `""`, and
/// neither is true of an array or an object.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Test {
    /// Absent, null or the empty string.
    Empty,
    NotEmpty,
    /// Absent or null.
    Null,
    NotNull,
}

/// A row's value of a column, as the `where` clause sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'r> {
    Str(Cow<'r, str>),
    /// A number, boolean, object or array: compares as no string does.
    Other,
}

impl<'r> Field<'r> {
    fn of(v: &'r Value) -> Option<Field<'r>> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(Field::Str(Cow::Borrowed(s))),
            _ => Some(Field::Other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    EqCi,
    Ne,
    NeCi,
    InCi,
    StartsWith,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    filter: Expr,
    pub tables: Vec<Table>,
    /// The columns `project` keeps (all when absent).
    pub project: Option<Vec<String>>,
}

/// A Resource Graph table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Resources,
    ResourceContainers,
    AuthorizationResources,
}

impl Table {
    fn parse(name: &str) -> Result<Table, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "resources" => Ok(Table::Resources),
            "resourcecontainers" => Ok(Table::ResourceContainers),
            "authorizationresources" => Ok(Table::AuthorizationResources),
            t => Err(format!("unknown table `{t}`")),
        }
    }

    /// The table ARG indexes a type in, by its ARM type; `None`: not indexed
    /// (or only inside its parent's row).
    pub fn of(resource_type: &str) -> Option<Table> {
        // Without lower-casing a copy: a query's first page asks this of every
        // stored resource.
        let is = |t: &str| resource_type.eq_ignore_ascii_case(t);
        if is("microsoft.resources/resourcegroups") {
            Some(Table::ResourceContainers)
        } else if is("microsoft.authorization/roleassignments") {
            Some(Table::AuthorizationResources)
        } else if is("microsoft.compute/galleries/images")
            || is("microsoft.compute/galleries/images/versions")
            || is("microsoft.compute/virtualmachines/extensions")
        {
            Some(Table::Resources)
        } else if is("microsoft.insights/diagnosticsettings") {
            None
        } else if resource_type.matches('/').count() == 1 {
            Some(Table::Resources)
        } else {
            None
        }
    }

    /// The `type` column: ARG's own name for a resource group.
    pub fn row_type(resource_type: &str) -> String {
        let t = resource_type.to_ascii_lowercase();
        if t == "microsoft.resources/resourcegroups" {
            "microsoft.resources/subscriptions/resourcegroups".into()
        } else {
            t
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Sym(String),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let q = c;
            let mut j = i + 1;
            let mut v = String::new();
            while j < cs.len() && cs[j] != q {
                v.push(cs[j]);
                j += 1;
            }
            if j >= cs.len() {
                return Err("unterminated string".into());
            }
            out.push(Tok::Str(v));
            i = j + 1;
        } else if c.is_alphanumeric() || c == '_' || c == '-' || c == '$' {
            let mut j = i;
            while j < cs.len()
                && (cs[j].is_alphanumeric() || matches!(cs[j], '_' | '-' | '~' | '$'))
            {
                j += 1;
            }
            out.push(Tok::Word(cs[i..j].iter().collect()));
            i = j;
        } else {
            let two: String = cs[i..(i + 2).min(cs.len())].iter().collect();
            if ["==", "=~", "!=", "!~"].contains(&two.as_str()) {
                out.push(Tok::Sym(two));
                i += 2;
            } else {
                out.push(Tok::Sym(c.to_string()));
                i += 1;
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn word_is(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }
    fn expect_sym(&mut self, s: &str) -> Result<(), String> {
        match self.next() {
            Some(Tok::Sym(x)) if x == s => Ok(()),
            other => Err(format!("expected `{s}`, found {other:?}")),
        }
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.word_is("or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.atom()?;
        while self.word_is("and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.atom()?));
        }
        Ok(e)
    }
    fn atom(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::Sym("(".into())) {
            self.pos += 1;
            let e = self.or()?;
            self.expect_sym(")")?;
            return Ok(e);
        }
        let test = match self.peek() {
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "isempty" => Some(Test::Empty),
                "isnotempty" => Some(Test::NotEmpty),
                "isnull" => Some(Test::Null),
                "isnotnull" => Some(Test::NotNull),
                _ => None,
            },
            _ => None,
        };
        if let Some(test) = test {
            self.pos += 1;
            self.expect_sym("(")?;
            let field = self.column()?;
            self.expect_sym(")")?;
            return Ok(Expr::Test { field, test });
        }
        let field = self.column()?;
        let op = match self.next() {
            Some(Tok::Sym(s)) if s == "==" => Op::Eq,
            Some(Tok::Sym(s)) if s == "=~" => Op::EqCi,
            Some(Tok::Sym(s)) if s == "!=" => Op::Ne,
            Some(Tok::Sym(s)) if s == "!~" => Op::NeCi,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("in~") => Op::InCi,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("startswith") => Op::StartsWith,
            other => return Err(format!("unsupported operator {other:?}")),
        };
        let values = if op == Op::InCi {
            self.expect_sym("(")?;
            let mut v = Vec::new();
            loop {
                match self.next() {
                    Some(Tok::Str(s)) => v.push(s),
                    other => return Err(format!("expected a string, found {other:?}")),
                }
                match self.next() {
                    Some(Tok::Sym(s)) if s == "," => continue,
                    Some(Tok::Sym(s)) if s == ")" => break,
                    other => return Err(format!("expected `,` or `)`, found {other:?}")),
                }
            }
            v
        } else {
            match self.next() {
                Some(Tok::Str(s)) => vec![s],
                other => return Err(format!("expected a string, found {other:?}")),
            }
        };
        Ok(Expr::Cmp { field, op, values })
    }

    /// A column: a known one, `tags['k']` / `tags.k` (as `tags.k`), or a
    /// path into `properties` (as `properties.a.b`).
    fn column(&mut self) -> Result<String, String> {
        let field = match self.next() {
            Some(Tok::Word(w)) => w,
            other => return Err(format!("expected a column, found {other:?}")),
        };
        if field.eq_ignore_ascii_case("properties") {
            let mut path = String::from("properties");
            while self.peek() == Some(&Tok::Sym(".".into())) {
                self.pos += 1;
                match self.next() {
                    Some(Tok::Word(k)) => {
                        path.push('.');
                        path.push_str(&k);
                    }
                    other => return Err(format!("expected a property name, found {other:?}")),
                }
            }
            if path == "properties" {
                return Err("`properties` compares only by a path (properties.name)".into());
            }
            return Ok(path);
        }
        let field = if field.eq_ignore_ascii_case("tags") {
            match self.next() {
                Some(Tok::Sym(s)) if s == "[" => {
                    let k = match self.next() {
                        Some(Tok::Str(k)) => k,
                        other => return Err(format!("expected a tag name, found {other:?}")),
                    };
                    self.expect_sym("]")?;
                    format!("tags.{k}")
                }
                Some(Tok::Sym(s)) if s == "." => match self.next() {
                    Some(Tok::Word(k)) => format!("tags.{k}"),
                    other => return Err(format!("expected a tag name, found {other:?}")),
                },
                other => return Err(format!("expected tags['name'], found {other:?}")),
            }
        } else {
            let known = [
                "id",
                "name",
                "type",
                "location",
                "resourceGroup",
                "subscriptionId",
                "managedBy",
            ];
            known
                .iter()
                .find(|k| k.eq_ignore_ascii_case(&field))
                .map(|k| k.to_string())
                .ok_or_else(|| format!("unknown column `{field}`"))?
        };
        Ok(field)
    }
}

impl Query {
    pub fn parse(text: &str) -> Result<Query, String> {
        let mut filter = Expr::True;
        let mut tables = Vec::new();
        let mut project = None;
        for (i, stage) in text.split('|').enumerate() {
            let stage = stage.trim();
            let first = stage
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            match (i, first.as_str()) {
                (0, _) if !stage.contains(' ') => tables.push(Table::parse(stage)?),
                (_, "union") => {
                    for t in stage[5..].split(',') {
                        tables.push(Table::parse(t)?);
                    }
                }
                (_, "project") => {
                    let cols: Vec<String> = stage[7..]
                        .split(',')
                        .map(|c| c.trim().to_string())
                        .collect();
                    if let Some(bad) = cols.iter().find(|c| {
                        c.is_empty() || !c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                    }) {
                        return Err(format!("unsupported projection `{bad}`"));
                    }
                    project = Some(cols);
                }
                (_, "order") | (_, "sort") => {}
                (_, "where") => {
                    let mut p = Parser {
                        toks: lex(&stage[5..])?,
                        pos: 0,
                    };
                    let e = p.or()?;
                    if p.pos != p.toks.len() {
                        return Err(format!("unexpected {:?}", p.toks[p.pos]));
                    }
                    filter = match filter {
                        Expr::True => e,
                        f => Expr::And(Box::new(f), Box::new(e)),
                    };
                }
                _ => return Err(format!("unsupported query stage `{stage}`")),
            }
        }
        if tables.is_empty() {
            tables.push(Table::Resources);
        }
        tables.dedup();
        if tables.contains(&Table::AuthorizationResources) && tables.len() > 1 {
            return Err(
                "union is only supported within one table or between Resources and ResourceContainers"
                    .into(),
            );
        }
        Ok(Query {
            filter,
            tables,
            project,
        })
    }

    /// Keep only the projected columns of `row`.
    pub fn projected(&self, row: Value) -> Value {
        match (&self.project, row) {
            (Some(cols), Value::Object(mut o)) => Value::Object(
                cols.iter()
                    .map(|c| (c.clone(), o.remove(c).unwrap_or(Value::Null)))
                    .collect(),
            ),
            (_, row) => row,
        }
    }

    /// The top-level row fields the `where` clause reads (`tags` for a tag).
    pub fn fields(&self) -> Vec<&str> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
            match e {
                Expr::Or(a, b) | Expr::And(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Cmp { field, .. } | Expr::Test { field, .. } => {
                    out.push(field.split('.').next().unwrap_or(field));
                }
                Expr::True => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.filter, &mut out);
        out
    }

    pub fn matches(&self, row: &Value) -> bool {
        eval(&self.filter, &|field| {
            if let Some(k) = field.strip_prefix("tags.") {
                return row.get("tags").and_then(|t| t.get(k)).and_then(Field::of);
            }
            match field.strip_prefix("properties.") {
                Some(path) => path
                    .split('.')
                    .try_fold(row.get("properties")?, |v, k| v.get(k))
                    .and_then(Field::of),
                None => row.get(field).and_then(Field::of),
            }
        })
    }

    /// Whether the row `r` would have, shown as `view`, matches: what
    /// [`Query::matches`] answers of `row(r, view)`, without building the row
    /// (asked of every resource in the store on a query's first page).
    pub fn matches_resource(&self, r: &StoredResource, view: &Value) -> bool {
        eval(&self.filter, &|field| row_field(r, view, field))
    }
}

/// A `where` clause: `field` gives a row's value of a field (`tags.k` for a
/// tag, `properties.a.b` for a property), `None` when it has none or null.
fn eval<'r>(e: &Expr, field: &impl Fn(&str) -> Option<Field<'r>>) -> bool {
    match e {
        Expr::True => true,
        Expr::Or(a, b) => eval(a, field) || eval(b, field),
        Expr::And(a, b) => eval(a, field) && eval(b, field),
        Expr::Test { field: name, test } => {
            let v = field(name);
            let empty = match &v {
                None => true,
                Some(Field::Str(s)) => s.is_empty(),
                Some(Field::Other) => false,
            };
            match test {
                Test::Empty => empty,
                Test::NotEmpty => !empty,
                Test::Null => v.is_none(),
                Test::NotNull => v.is_some(),
            }
        }
        Expr::Cmp {
            field: name,
            op,
            values,
        } => {
            // What is not a string compares as the empty string does.
            let actual = match field(name) {
                Some(Field::Str(s)) => s,
                _ => Cow::Borrowed(""),
            };
            let actual = actual.as_ref();
            let v = values.first().map(String::as_str).unwrap_or("");
            match op {
                Op::Eq => actual == v,
                Op::EqCi => actual.eq_ignore_ascii_case(v),
                Op::Ne => actual != v,
                Op::NeCi => !actual.eq_ignore_ascii_case(v),
                Op::InCi => values.iter().any(|x| x.eq_ignore_ascii_case(actual)),
                // ASCII case folding keeps byte lengths: a prefix compared
                // byte for byte, without lower-cased copies.
                Op::StartsWith => actual
                    .as_bytes()
                    .get(..v.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(v.as_bytes())),
            }
        }
    }
}

/// The value of `field` in `row(r, view)` (`None`: absent or null), read
/// from `r` and `view` as `row` would place it.
fn row_field<'r>(r: &'r StoredResource, view: &'r Value, field: &str) -> Option<Field<'r>> {
    // `Some(None)`: the view has the key, null.
    let from_view = |k: &str| view.get(k).map(Field::of);
    if let Some(k) = field.strip_prefix("tags.") {
        return view.get("tags")?.get(k).and_then(Field::of);
    }
    if let Some(path) = field.strip_prefix("properties.") {
        return path
            .split('.')
            .try_fold(view.get("properties")?, |v, k| v.get(k))
            .and_then(Field::of);
    }
    let owned = |s: String| Some(Field::Str(Cow::Owned(s)));
    match field {
        "id" => Some(Field::Str(Cow::Borrowed(
            view.get("id")
                .and_then(Value::as_str)
                .unwrap_or(r.id.as_str()),
        ))),
        "name" => Some(Field::Str(Cow::Borrowed(r.id.name()))),
        "type" => owned(Table::row_type(&r.resource_type)),
        "subscriptionId" => {
            from_view(field).unwrap_or(Some(Field::Str(Cow::Borrowed(r.id.subscription()))))
        }
        "resourceGroup" => from_view(field)
            .unwrap_or_else(|| owned(r.id.resource_group().unwrap_or("").to_ascii_lowercase())),
        _ => from_view(field).flatten(),
    }
}

/// A resource as an ARG row (`resultFormat: objectArray`): ARG lower-cases `type`
/// and `resourceGroup`.
pub fn row(r: &StoredResource, view: Value) -> Value {
    let mut row = json!({
        "id": view.get("id").and_then(Value::as_str).unwrap_or(r.id.as_str()),
        "name": r.id.name(),
        "type": Table::row_type(&r.resource_type),
        "subscriptionId": r.id.subscription(),
        "resourceGroup": r.id.resource_group().unwrap_or("").to_ascii_lowercase(),
    });
    if let Value::Object(v) = view {
        for (k, val) in v {
            if !matches!(k.as_str(), "id" | "name" | "type") {
                row[k] = val;
            }
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifeboat_query_filters_on_tags_and_groups() {
        let q = Query::parse(
            "resources | union resourcecontainers | where tags['lifeboat-managed'] =~ 'true' or resourceGroup in~ ('lb-cwz-rg', 'x') | project id, type",
        )
        .unwrap();
        assert_eq!(q.tables, vec![Table::Resources, Table::ResourceContainers]);
        assert_eq!(
            q.projected(json!({"id": "a", "type": "t", "name": "n"})),
            json!({"id": "a", "type": "t"})
        );
        assert!(q.matches(&json!({"tags": {"lifeboat-managed": "True"}})));
        assert!(q.matches(&json!({"resourceGroup": "LB-CWZ-RG"})));
        assert!(!q.matches(&json!({"resourceGroup": "other", "tags": {}})));
        // The first page decides which resources are rows from these fields only.
        assert_eq!(q.fields(), ["tags", "resourceGroup"]);
        let all = Query::parse("resources | project id").unwrap();
        assert!(all.fields().is_empty() && all.matches(&json!({})));
    }

    /// The row `row` builds for a `where` clause: the body's top-level fields
    /// the clause names (what the query path did before it read fields in
    /// place).
    fn filter_row(q: &Query, r: &StoredResource, view: &Value) -> Value {
        let fields = q.fields();
        let top = view
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| fields.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .map_or(Value::Null, Value::Object);
        row(r, top)
    }

    #[test]
    fn a_resource_matches_as_its_row_does() {
        use lifeboat_core::id::ResourceId;
        let stored = |id: &str, t: &str, body: Value| {
            StoredResource::new(ResourceId::parse(id).unwrap(), t.into(), "x".into(), body)
        };
        let resources = [
            stored(
                "/subscriptions/S1/resourceGroups/LB-CWZ-RG",
                "Microsoft.Resources/resourceGroups",
                json!({"location": "westeurope", "tags": {"lifeboat-managed": "true"}}),
            ),
            stored(
                "/subscriptions/s1/resourceGroups/LB-CWZ-RG/providers/Microsoft.KeyVault/vaults/KV1",
                "Microsoft.KeyVault/vaults",
                json!({"location": "WestEurope", "tags": {"lifeboat-managed": "TRUE", "lifeboat-tenant": "cwz"}, "properties": {"x": 1}}),
            ),
            stored(
                "/subscriptions/s2/resourceGroups/other/providers/Microsoft.Network/virtualNetworks/v",
                "Microsoft.Network/virtualNetworks",
                json!({"tags": {"lifeboat-managed": 1}, "location": null, "name": "shadow", "type": "shadow"}),
            ),
            stored(
                "/subscriptions/s2/resourceGroups/other/providers/Microsoft.Storage/storageAccounts/st",
                "Microsoft.Storage/storageAccounts",
                json!({"id": "/subscriptions/s2/resourceGroups/other/providers/Microsoft.Storage/storageAccounts/ST", "resourceGroup": "LB-moved", "subscriptionId": 7}),
            ),
            stored(
                "/subscriptions/s1/resourceGroups/lb-cwz-rg/providers/Microsoft.Compute/disks/fe1-osdisk",
                "Microsoft.Compute/disks",
                json!({"managedBy": "/subscriptions/s1/resourceGroups/lb-cwz-rg/providers/Microsoft.Compute/virtualMachines/fe1",
                    "properties": {"osType": "Windows", "diskSizeGB": 127}}),
            ),
            stored(
                "/subscriptions/s1/resourceGroups/lb-cwz-rg/providers/Microsoft.Compute/disks/data",
                "Microsoft.Compute/disks",
                json!({"managedBy": "", "tags": {"lifeboat-managed": "true"}, "properties": {"osType": null, "diskSizeGB": 64}}),
            ),
            stored(
                "/subscriptions/s2/resourceGroups/lb-x/providers/Microsoft.Authorization/roleAssignments/a",
                "Microsoft.Authorization/roleAssignments",
                json!("not an object"),
            ),
        ];
        let queries = [
            "resources | union resourcecontainers | where tags['lifeboat-managed'] =~ 'true' or resourceGroup startswith 'lb-' | project id",
            "authorizationresources | where type =~ 'microsoft.authorization/roleassignments' and resourceGroup startswith 'LB-'",
            "resources | where name == 'KV1' or name == 'shadow'",
            "resources | where type == 'microsoft.resources/subscriptions/resourcegroups'",
            "resources | where location =~ 'westeurope' and tags.lifeboat-tenant != 'x'",
            "resources | where subscriptionId in~ ('S2', 's1') and id startswith '/subscriptions/s2/resourceGroups/other/providers/Microsoft.Storage/storageAccounts/ST'",
            "resources | where resourceGroup == 'lb-moved' or resourceGroup startswith 'LB-CWZ-RG-longer'",
            "resources | where tags['lifeboat-managed'] == '' and location == ''",
            "resources | where resourceGroup == 'LB-moved' or resourceGroup == 'lb-cwz-rg'",
            "resources | where subscriptionId == ''",
            "resources | where id == '/subscriptions/s2/resourceGroups/other/providers/Microsoft.Storage/storageAccounts/st'",
            "resources | where isempty(managedBy) or type !~ 'microsoft.compute/disks' or isnull(properties.osType)",
            "resources | where isnotempty(managedBy) and isnotnull(properties.osType)",
            "resources | where isnull(managedBy) and properties.diskSizeGB == ''",
            "resources | where isnotempty(properties.x) or isempty(tags.lifeboat-tenant)",
        ];
        let mut matched = 0;
        for text in queries {
            let q = Query::parse(text).unwrap();
            for r in &resources {
                let reference = q.matches(&filter_row(&q, r, &r.body));
                assert_eq!(
                    q.matches_resource(r, &r.body),
                    reference,
                    "{text} on {}",
                    r.id.as_str()
                );
                matched += usize::from(reference);
            }
        }
        // `startswith` folds ASCII case on both sides, as KQL's does.
        let q = Query::parse("resources | where resourceGroup startswith 'Lb-'").unwrap();
        for (rg, want) in [
            ("lb-x", true),
            ("LB-", true),
            ("lB-x", true),
            ("l", false),
            ("xlb-", false),
            ("", false),
        ] {
            assert_eq!(q.matches(&json!({ "resourceGroup": rg })), want, "{rg}");
        }
        // What lifeboat's reads leave out: a VM's own OS disk, only.
        let q = Query::parse(
            "resources | where isempty(managedBy) or type !~ 'microsoft.compute/disks' or isnull(properties.osType)",
        )
        .unwrap();
        let kept: Vec<&str> = resources
            .iter()
            .filter(|r| q.matches_resource(r, &r.body))
            .map(|r| r.id.name())
            .collect();
        assert!(
            !kept.contains(&"fe1-osdisk") && kept.contains(&"data"),
            "{kept:?}"
        );
        assert_eq!(kept.len(), resources.len() - 1);
        // Both answers occur: the comparison tells something.
        assert!(
            matched > 5 && matched < queries.len() * resources.len() - 5,
            "{matched}"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(
            Query::parse("resources | where foo == 'x'")
                .unwrap_err()
                .contains("unknown column")
        );
        assert!(
            Query::parse("resources | summarize count()")
                .unwrap_err()
                .contains("unsupported")
        );
        assert!(
            Query::parse("resources | where id == 'x")
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(Query::parse("authorizationresources | union resources").is_err());
        assert!(Query::parse("resources | project id, n = name").is_err());
        assert!(
            Query::parse("resources | where isempty(properties)")
                .unwrap_err()
                .contains("path")
        );
        assert!(
            Query::parse("resources | where isempty(foo)")
                .unwrap_err()
                .contains("unknown column")
        );
    }

    #[test]
    fn tables_follow_microsofts_coverage() {
        assert_eq!(
            Table::of("Microsoft.Network/virtualNetworks"),
            Some(Table::Resources)
        );
        assert_eq!(Table::of("Microsoft.Network/virtualNetworks/subnets"), None);
        assert_eq!(Table::of("Microsoft.KeyVault/vaults/keys"), None);
        assert_eq!(Table::of("Microsoft.Insights/diagnosticSettings"), None);
        assert_eq!(
            Table::of("Microsoft.Authorization/roleAssignments"),
            Some(Table::AuthorizationResources)
        );
        assert_eq!(
            Table::row_type("Microsoft.Resources/resourceGroups"),
            "microsoft.resources/subscriptions/resourcegroups"
        );
    }
}
