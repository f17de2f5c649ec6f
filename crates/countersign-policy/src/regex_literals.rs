//! `matches` with a literal pattern, compiled once at load. The `cel` crate compiles the regular
//! expression of `s.matches("...")` on every call (about 100 µs for a case-insensitive pattern),
//! which would dwarf the rest of a decision. At load, every `matches` call whose pattern is a
//! string literal is rewritten into a call of [`FUNCTION`] with the index of the pattern, compiled
//! here; a pattern that does not compile fails the load. Patterns computed at run time are left
//! to `cel`. This module changes how a condition runs, never what it means.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::{CelBool, CelInt, CelString};
use cel::common::value::CowVal;
use cel::{Context, ExecutionError, FunctionContext};
use regex::Regex;

/// The function name `matches` calls with a literal pattern are rewritten to. Not a valid CEL
/// identifier, so no policy can call it by accident.
const FUNCTION: &str = "@countersign_matches";

/// The signature `cel` expects of a function added to a context.
type Function = Box<
    dyn for<'c, 'k> Fn(&mut FunctionContext<'c, 'k>) -> Result<CowVal<'c, 'k>, ExecutionError>
        + Send
        + Sync,
>;

/// Rewrites the literal-pattern `matches` calls in `expr`, compiling their patterns into
/// `regexes` (the policy-wide list). `Err` names a pattern that is not a valid regex.
pub(crate) fn rewrite(expr: &mut IdedExpr, regexes: &mut Vec<Regex>) -> Result<(), String> {
    match &mut expr.expr {
        Expr::Call(call) => {
            if let Some(target) = &mut call.target {
                rewrite(target, regexes)?;
            }
            for arg in &mut call.args {
                rewrite(arg, regexes)?;
            }
            if call.func_name != "matches" {
                return Ok(());
            }
            let (subject, pattern) = match (call.target.take(), call.args.as_mut_slice()) {
                (Some(target), [pattern]) => (*target, pattern),
                (None, [subject, pattern]) => (std::mem::take(subject), pattern),
                (target, _) => {
                    call.target = target;
                    return Ok(());
                }
            };
            let Expr::Literal(LiteralValue::String(text)) = &pattern.expr else {
                // Not a literal: put the call back as it was written.
                if call.args.len() == 1 {
                    call.target = Some(Box::new(subject));
                } else {
                    call.args[0] = subject;
                }
                return Ok(());
            };
            let regex = Regex::new(text.inner())
                .map_err(|e| format!("`matches` has an invalid regular expression: {e}"))?;
            let index = i64::try_from(regexes.len()).unwrap_or(i64::MAX);
            regexes.push(regex);
            let pattern_id = pattern.id;
            call.func_name = FUNCTION.to_string();
            call.args = vec![
                subject,
                IdedExpr {
                    id: pattern_id,
                    expr: Expr::Literal(LiteralValue::Int(CelInt::from(index))),
                },
            ];
        }
        Expr::Select(select) => rewrite(&mut select.operand, regexes)?,
        Expr::Comprehension(c) => {
            for part in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                rewrite(part, regexes)?;
            }
        }
        Expr::List(list) => {
            for element in &mut list.elements {
                rewrite(element, regexes)?;
            }
        }
        Expr::Map(map) => {
            for entry in &mut map.entries {
                if let EntryExpr::MapEntry(e) = &mut entry.expr {
                    rewrite(&mut e.key, regexes)?;
                    rewrite(&mut e.value, regexes)?;
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &mut s.entries {
                match &mut entry.expr {
                    EntryExpr::StructField(f) => rewrite(&mut f.value, regexes)?,
                    EntryExpr::MapEntry(e) => {
                        rewrite(&mut e.key, regexes)?;
                        rewrite(&mut e.value, regexes)?;
                    }
                }
            }
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
    Ok(())
}

/// Makes the compiled patterns callable from `context`.
pub(crate) fn install(context: &mut Context<'_, '_>, regexes: &std::sync::Arc<[Regex]>) {
    if regexes.is_empty() {
        return;
    }
    let regexes = std::sync::Arc::clone(regexes);
    let function: Function = Box::new(move |call: &mut FunctionContext<'_, '_>| {
        let matched = match call.args.as_slice() {
            [subject, index] => {
                let text = subject.as_ref().downcast_ref::<CelString>();
                let index = index.as_ref().downcast_ref::<CelInt>();
                match (text, index) {
                    (Some(text), Some(index)) => usize::try_from(*index.inner())
                        .ok()
                        .and_then(|i| regexes.get(i))
                        .map(|re| re.is_match(text.inner())),
                    _ => None,
                }
            }
            _ => None,
        };
        match matched {
            Some(m) => Ok(CowVal::owned(CelBool::from(m))),
            None => Err(ExecutionError::function_error(
                "matches",
                format!(
                    "applies to a string, got {}",
                    call.args
                        .first()
                        .map_or("nothing", |a| a.as_ref().get_type().name())
                ),
            )),
        }
    });
    // The name cannot clash with a standard overload (it is not an identifier), so this only
    // fails if `cel` changes; then the calls error and the rules fail closed.
    let _ = context.add_function(FUNCTION, function);
}
