//! Comprehensions made cancellable. A budgeted evaluation is cancelled by making every variable
//! lookup fail (`Bindings::resolve`), but a loop whose body looks nothing up
//! (`[params.a].all(l, l.all(x, l.all(y, x != y)))`) would run to its end. So at load, the loop
//! step of every comprehension of a budgeted condition is guarded by a lookup of [`VARIABLE`],
//! a name no policy can write (`@` is not an identifier character): `@budget ? step : …`. While
//! the budget lasts it is `true` and the step runs as written; once cancelled, the lookup fails
//! before the step runs, so each remaining iteration costs a lookup and the walk ends quickly.
//!
//! The guard keeps the shapes `cel` recognises to run `all`/`exists` (`@result && p`) and
//! `map`/`filter` (`@result + [e]`, `c ? @result + [e] : @result`) in one pass, by guarding the
//! predicate, the element or the filter condition rather than the whole step. This module
//! changes how long a cancelled evaluation runs, never what a condition means.

use cel::common::ast::operators::{ADD, CONDITIONAL, LOGICAL_AND, LOGICAL_OR};
use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue};

/// The variable that is `true` while the budget lasts and missing once it is spent.
pub(crate) const VARIABLE: &str = "@budget";

/// Guards the loop steps of every comprehension in `expr`.
pub(crate) fn guard_loops(expr: &mut IdedExpr) {
    match &mut expr.expr {
        Expr::Comprehension(c) => {
            for part in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                guard_loops(part);
            }
            let accu = c.accu_var.clone();
            guard_step(&mut c.loop_step, &accu);
        }
        Expr::Call(call) => {
            if let Some(target) = &mut call.target {
                guard_loops(target);
            }
            call.args.iter_mut().for_each(guard_loops);
        }
        Expr::Select(select) => guard_loops(&mut select.operand),
        Expr::List(list) => list.elements.iter_mut().for_each(guard_loops),
        Expr::Map(map) => {
            for entry in &mut map.entries {
                match &mut entry.expr {
                    EntryExpr::MapEntry(e) => {
                        guard_loops(&mut e.key);
                        guard_loops(&mut e.value);
                    }
                    EntryExpr::StructField(f) => guard_loops(&mut f.value),
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &mut s.entries {
                match &mut entry.expr {
                    EntryExpr::MapEntry(e) => {
                        guard_loops(&mut e.key);
                        guard_loops(&mut e.value);
                    }
                    EntryExpr::StructField(f) => guard_loops(&mut f.value),
                }
            }
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn is_ident(expr: &IdedExpr, name: &str) -> bool {
    matches!(&expr.expr, Expr::Ident(n) if n == name)
}

/// Guards one loop step, keeping the shape `cel` optimises.
fn guard_step(step: &mut IdedExpr, accu: &str) {
    if let Expr::Call(call) = &mut step.expr
        && call.target.is_none()
    {
        match (call.func_name.as_str(), call.args.as_mut_slice()) {
            // `cond ? … : …` (filter, exists_one, map with a filter): guard the condition.
            (CONDITIONAL, [cond, _, _]) => {
                guarded(cond, LiteralValue::Boolean(false.into()));
                return;
            }
            // `@result && p` / `@result || p` (all, exists): guard the predicate.
            (LOGICAL_AND | LOGICAL_OR, [first, predicate]) if is_ident(first, accu) => {
                guarded(predicate, LiteralValue::Boolean(false.into()));
                return;
            }
            // `@result + [e]` (map): guard the element.
            (ADD, [first, list]) if is_ident(first, accu) => {
                if let Expr::List(list) = &mut list.expr {
                    for element in &mut list.elements {
                        guarded(element, LiteralValue::Null);
                    }
                    return;
                }
            }
            _ => {}
        }
    }
    // Any other step: guard it whole, leaving the accumulator as it was otherwise.
    let id = step.id;
    let inner = std::mem::take(step);
    *step = conditional(
        id,
        inner,
        IdedExpr {
            id,
            expr: Expr::Ident(accu.to_string()),
        },
    );
}

/// `expr` becomes `@budget ? expr : otherwise` (the else branch is never taken: the lookup is
/// `true` or an error).
fn guarded(expr: &mut IdedExpr, otherwise: LiteralValue) {
    let id = expr.id;
    let inner = std::mem::take(expr);
    *expr = conditional(
        id,
        inner,
        IdedExpr {
            id,
            expr: Expr::Literal(otherwise),
        },
    );
}

fn conditional(id: u64, then: IdedExpr, otherwise: IdedExpr) -> IdedExpr {
    IdedExpr {
        id,
        expr: Expr::Call(CallExpr {
            func_name: CONDITIONAL.to_string(),
            target: None,
            args: vec![
                IdedExpr {
                    id,
                    expr: Expr::Ident(VARIABLE.to_string()),
                },
                then,
                otherwise,
            ],
        }),
    }
}
