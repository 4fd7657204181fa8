//! LDAP search filters from configured templates: `{username}` and `{dn}`
//! placeholders replaced by RFC 4515-escaped values.
//!
//! This module must never put a value into a filter unescaped: `*`, `(`,
//! `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`, so a username
//! of `*)(uid=*` matches the user literally named so, and nobody else.
//! Substitution is one pass: a value containing `{dn}` is not substituted
//! again.

/// Placeholders a template may contain.
pub const PLACEHOLDERS: [&str; 2] = ["username", "dn"];

/// Escapes a value for a filter (RFC 4515, section 3).
pub fn escape_value(value: &str) -> String {
    ldap3::ldap_escape(value).into_owned()
}

/// Fills in `template`: each `{name}` with a value in `values` becomes the
/// escaped value; anything else is copied as it is.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let substituted = after.find('}').and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (close, escape_value(value)))
        });
        match substituted {
            Some((close, value)) => {
                out.push_str(&value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Checks a configured template: only known placeholders, the `required`
/// ones present, and a filter that parses once filled in.
pub fn check_template(template: &str, required: &[&str]) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("has a '{' without '}'".to_owned());
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} (known: {{username}}, {{dn}})"
            ));
        }
        rest = &after[close + 1..];
    }
    for name in required {
        if !template.contains(&format!("{{{name}}}")) {
            return Err(format!("must contain {{{name}}}"));
        }
    }
    let sample = render(
        template,
        &[("username", "sample"), ("dn", "cn=sample,dc=example")],
    );
    check_filter(&sample).map_err(|problem| format!("{problem}: {sample}"))
}

/// Checks a filter without placeholders (such as `disabled_filter`): in
/// parentheses, and parsable.
pub fn check_filter(filter: &str) -> Result<(), String> {
    let filter = filter.trim();
    if !(filter.starts_with('(') && filter.ends_with(')')) {
        return Err("is not a valid LDAP filter: it must be in parentheses".to_owned());
    }
    ldap3::parse_filter(filter)
        .map(|_| ())
        .map_err(|()| "is not a valid LDAP filter".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_FILTER: &str = "(&(objectClass=inetOrgPerson)(uid={username}))";

    #[test]
    fn injection_attempts_are_escaped() {
        assert_eq!(
            render(USER_FILTER, &[("username", "*)(uid=*")]),
            "(&(objectClass=inetOrgPerson)(uid=\\2a\\29\\28uid=\\2a))"
        );
        assert_eq!(
            render(USER_FILTER, &[("username", "admin)(|(uid=*")]),
            "(&(objectClass=inetOrgPerson)(uid=admin\\29\\28|\\28uid=\\2a))"
        );
        assert_eq!(
            render("(x={username})", &[("username", "a\\b\0c")]),
            "(x=a\\5cb\\00c)"
        );
        // Rendered filters still parse, and stay one equality match.
        for hostile in ["*", "*)(uid=*", "admin)(|(uid=*", "\\", "x)(objectClass=*"] {
            let filter = render(USER_FILTER, &[("username", hostile)]);
            assert!(ldap3::parse_filter(&filter).is_ok(), "{filter}");
            assert!(!filter.contains("=*)"), "{filter}");
        }
    }

    #[test]
    fn substitution_is_one_pass_and_leaves_other_braces() {
        assert_eq!(
            render(
                "(&(member={dn})(cn={username}))",
                &[("dn", "{username}"), ("username", "x")]
            ),
            "(&(member={username})(cn=x))"
        );
        assert_eq!(render("(a={other})", &[("dn", "x")]), "(a={other})");
        assert_eq!(render("(a={dn", &[("dn", "x")]), "(a={dn");
        assert_eq!(
            render("(member={dn})", &[("dn", "cn=Smith\\, J (ops),ou=x")]),
            "(member=cn=Smith\\5c, J \\28ops\\29,ou=x)"
        );
    }

    #[test]
    fn templates_are_checked() {
        assert!(check_template(USER_FILTER, &["username"]).is_ok());
        assert!(
            check_template("(uid=%s)", &["username"])
                .expect_err("no placeholder")
                .contains("{username}")
        );
        assert!(
            check_template("(uid={user})", &["username"])
                .expect_err("unknown")
                .contains("{user}")
        );
        assert!(
            check_template("(&(uid={username})", &["username"])
                .expect_err("unbalanced")
                .contains("not a valid")
        );
        assert!(check_template("(member={dn}", &["dn"]).is_err());
        assert!(check_filter("(employeeType=disabled)").is_ok());
        assert!(check_filter("(userAccountControl:1.2.840.113556.1.4.803:=2)").is_ok());
        assert!(check_filter("employeeType=disabled)").is_err());
    }
}
