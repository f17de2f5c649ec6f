//! The walk over one parsed statement that finds its tables (read or written), the functions it
//! calls and whether any part of it may write. sqlparser's visitor reaches every node; this
//! module decides what a node means: which names are CTEs in scope rather than tables, which
//! relations are the targets of a write, which table factors are function calls.
//!
//! Nodes are told apart by address: the walk borrows one immutable tree, so the address of a
//! name seen when its statement is entered is the address the visitor later passes for it.

use super::kinds;
use sqlparser::ast::{
    BinaryOperator, CopySource, Expr, FromTable, GrantObjects, Ident, ObjectName, ObjectNamePart,
    ObjectType, Query, Select, SetExpr, Statement, TableFactor, TableObject, Visit, Visitor,
};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;

/// What one statement (and everything nested in it) names and does.
#[derive(Default)]
pub(crate) struct Collected {
    pub tables: BTreeSet<String>,
    pub reads: BTreeSet<String>,
    pub writes_to: BTreeSet<String>,
    pub functions: BTreeSet<String>,
    pub writes: bool,
}

/// The CTE names one `WITH` brings into scope. While the `i`-th CTE's body is walked only the
/// ones before it are visible (and itself, if `RECURSIVE`); in the query's body, all of them.
struct Scope {
    names: HashMap<String, usize>,
    visible: usize,
    recursive: bool,
}

#[derive(Default)]
struct Collector {
    found: Collected,
    scopes: Vec<Scope>,
    /// The address of each CTE body being walked or to be walked: its scope and position.
    cte_bodies: HashMap<usize, (usize, usize)>,
    /// Addresses of the relation names that a statement writes to.
    targets: HashSet<usize>,
    /// Addresses of relation names that are really calls (`FROM generate_series(1, 3)`).
    calls: HashSet<usize>,
}

/// Walks `statement`, which is a whole statement of the SQL.
pub(crate) fn collect(statement: &Statement) -> Collected {
    let mut collector = Collector::default();
    // `Break` is `Infallible`: the walk always goes to the end.
    let _ = statement.visit(&mut collector);
    collector.found
}

fn address<T>(node: &T) -> usize {
    std::ptr::from_ref(node) as usize
}

/// An identifier as PostgreSQL reads it: folded to lower case unless quoted.
pub(crate) fn ident(ident: &Ident) -> String {
    match ident.quote_style {
        None => ident.value.to_lowercase(),
        Some(_) => ident.value.clone(),
    }
}

/// A name as the facts write it: its parts, each read as PostgreSQL does, joined with `.`.
pub(crate) fn name(name: &ObjectName) -> String {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(i) => ident(i),
            ObjectNamePart::Function(f) => f.to_string().to_lowercase(),
        })
        .collect();
    parts.join(".")
}

impl Collector {
    /// Records the table `written` (`schema.table` and `table`) as read or written.
    fn table(&mut self, written: String, write: bool) {
        let bare = written.rsplit('.').next().map(str::to_owned);
        for n in std::iter::once(written).chain(bare) {
            self.found.tables.insert(n.clone());
            if write {
                self.found.writes_to.insert(n);
            } else {
                self.found.reads.insert(n);
            }
        }
    }

    /// A table that the visitor does not reach as a relation (`DROP TABLE`, `COPY`, `GRANT`).
    fn named_table(&mut self, n: &ObjectName, write: bool) {
        self.table(name(n), write);
    }

    fn target(&mut self, n: &ObjectName) {
        self.targets.insert(address(n));
    }

    fn target_factor(&mut self, factor: &TableFactor) {
        if let TableFactor::Table { name, .. } = factor {
            self.target(name);
        }
    }

    fn call(&mut self, function: String) {
        if !kinds::pure_function(&function) {
            self.found.writes = true;
        }
        self.found.functions.insert(function);
    }

    fn is_cte(&self, n: &ObjectName) -> bool {
        if !kinds::single_part(n) {
            return false;
        }
        let bare = name(n);
        self.scopes
            .iter()
            .any(|s| s.names.get(&bare).is_some_and(|&i| i < s.visible))
    }

    /// `TABLE t` in a query body: a read the visitor does not see as a relation.
    fn table_bodies(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Table(t) => {
                if let Some(table) = &t.table_name {
                    let written = match &t.schema_name {
                        Some(schema) => format!("{}.{}", ident(schema), ident(table)),
                        None => ident(table),
                    };
                    let cte = t.schema_name.is_none()
                        && self
                            .scopes
                            .iter()
                            .any(|s| s.names.get(&written).is_some_and(|&i| i < s.visible));
                    if !cte {
                        self.table(written, false);
                    }
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.table_bodies(left);
                self.table_bodies(right);
            }
            _ => {}
        }
    }
}

impl Visitor for Collector {
    type Break = std::convert::Infallible;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Self::Break> {
        if !kinds::reads_only(statement) {
            self.found.writes = true;
        }
        match statement {
            Statement::Insert(insert) => {
                if let TableObject::TableName(n) = &insert.table {
                    self.target(n);
                }
            }
            Statement::Update(update) => self.target_factor(&update.table.relation),
            Statement::Delete(delete) => {
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) =
                    &delete.from;
                for t in from {
                    self.target_factor(&t.relation);
                }
                for n in &delete.tables {
                    self.named_table(n, true);
                }
            }
            Statement::Merge(merge) => self.target_factor(&merge.table),
            Statement::Truncate(truncate) => {
                for t in &truncate.table_names {
                    self.target(&t.name);
                }
            }
            Statement::CreateTable(create) => self.target(&create.name),
            Statement::CreateView(create) => self.target(&create.name),
            Statement::CreateIndex(create) => self.target(&create.table_name),
            Statement::AlterTable(alter) => self.target(&alter.name),
            Statement::AlterView(alter) => self.target(&alter.name),
            Statement::RefreshMaterializedView(refresh) => self.target(&refresh.name),
            Statement::Drop {
                object_type:
                    ObjectType::Table
                    | ObjectType::View
                    | ObjectType::MaterializedView
                    | ObjectType::ForeignTable,
                names,
                ..
            } => {
                for n in names {
                    self.named_table(n, true);
                }
            }
            Statement::Copy {
                source: CopySource::Table { table_name, .. },
                to,
                ..
            } => self.named_table(table_name, !*to),
            Statement::Grant(grant) => self.granted(grant.objects.as_ref()),
            Statement::Revoke(revoke) => self.granted(revoke.objects.as_ref()),
            Statement::Call(function) => self.call(name(&function.name)),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Self::Break> {
        if let Some(&(scope, i)) = self.cte_bodies.get(&address(query)) {
            let s = &mut self.scopes[scope];
            s.visible = if s.recursive { i + 1 } else { i };
        }
        if let Some(with) = &query.with {
            let scope = self.scopes.len();
            let mut names = HashMap::new();
            for (i, cte) in with.cte_tables.iter().enumerate() {
                names.entry(ident(&cte.alias.name)).or_insert(i);
                self.cte_bodies.insert(address(&*cte.query), (scope, i));
            }
            self.scopes.push(Scope {
                names,
                visible: 0,
                recursive: with.recursive,
            });
        }
        if !query.locks.is_empty() {
            // `FOR UPDATE` / `FOR SHARE` take row locks: they block writers and need write
            // privileges, and are refused in a read-only transaction.
            self.found.writes = true;
        }
        self.table_bodies(&query.body);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<Self::Break> {
        if query.with.is_some() {
            self.scopes.pop();
        }
        if let Some(&(scope, i)) = self.cte_bodies.get(&address(query)) {
            // The CTEs after this one, and the query's body, see it.
            self.scopes[scope].visible = i + 1;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Self::Break> {
        if let Some(into) = &select.into {
            // `SELECT ... INTO t` creates the table `t`.
            self.found.writes = true;
            for target in &into.targets {
                let written = match target {
                    Expr::Identifier(i) => ident(i),
                    Expr::CompoundIdentifier(parts) => {
                        parts.iter().map(ident).collect::<Vec<_>>().join(".")
                    }
                    other => other.to_string().to_lowercase(),
                };
                self.table(written, true);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Self::Break> {
        match factor {
            TableFactor::Table {
                name: n,
                args: Some(_),
                ..
            } => {
                self.calls.insert(address(n));
                self.call(name(n));
            }
            TableFactor::Function { name: n, .. } => self.call(name(n)),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Self::Break> {
        let at = address(relation);
        if self.calls.contains(&at) || self.is_cte(relation) {
            return ControlFlow::Continue(());
        }
        let write = self.targets.contains(&at);
        self.table(name(relation), write);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        match expr {
            Expr::Function(f) => self.call(name(&f.name)),
            // A user-defined operator runs a function of the database's own.
            Expr::BinaryOp {
                op: BinaryOperator::Custom(_) | BinaryOperator::PGCustomBinaryOperator(_),
                ..
            } => self.found.writes = true,
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

impl Collector {
    /// The tables a `GRANT` or `REVOKE` changes the privileges of.
    fn granted(&mut self, objects: Option<&GrantObjects>) {
        if let Some(GrantObjects::Tables(names) | GrantObjects::Views(names)) = objects {
            for n in names {
                self.named_table(n, true);
            }
        }
    }
}
