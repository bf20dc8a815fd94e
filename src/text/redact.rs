//! PII redaction applied to transcripts before anything leaves the device: e-mail addresses,
//! phone numbers and card-like digit runs are replaced by `[email]`, `[phone]`, `[number]`.

/// Replaces e-mail addresses, phone numbers and long digit runs in `text`.
pub fn redact(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if is_email(w) {
            out.push(keep_punct(w, "[email]"));
            i += 1;
            continue;
        }
        // A run of words made of digits and phone/card separators: join and count digits.
        let mut j = i;
        let mut digits = 0;
        while j < words.len() && is_numberish(words[j]) {
            digits += words[j].chars().filter(|c| c.is_ascii_digit()).count();
            j += 1;
        }
        if j > i && digits >= 7 {
            let run = words[i..j].join(" ");
            let label = if digits >= 13 { "[number]" } else { "[phone]" };
            out.push(keep_punct(&run, label));
            i = j;
            continue;
        }
        out.push(w.to_string());
        i += 1;
    }
    out.join(" ")
}

fn trim_punct(w: &str) -> &str {
    w.trim_matches(|c: char| matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | '"' | '\'' | '(' | ')'))
}

fn keep_punct(w: &str, label: &str) -> String {
    let trailing: String =
        w.chars().rev().take_while(|c| matches!(c, '.' | ',' | ';' | ':' | '!' | '?')).collect();
    format!("{label}{}", trailing.chars().rev().collect::<String>())
}

fn is_email(w: &str) -> bool {
    let w = trim_punct(w);
    let Some((user, domain)) = w.split_once('@') else { return false };
    !user.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
}

fn is_numberish(w: &str) -> bool {
    let w = trim_punct(w);
    !w.is_empty()
        && w.chars().any(|c| c.is_ascii_digit())
        && w.chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '(' | ')' | '.' | '/'))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn emails_phones_and_cards() {
        assert_eq!(redact("mail me at jane.doe@example.com, thanks"), "mail me at [email], thanks");
        assert_eq!(redact("call 555-123-4567 now"), "call [phone] now");
        assert_eq!(redact("my number is +44 20 7946 0958."), "my number is [phone].");
        assert_eq!(redact("card 4111 1111 1111 1111 expires"), "card [number] expires");
        assert_eq!(redact("4111-1111-1111-1111"), "[number]");
    }

    #[test]
    fn ordinary_numbers_and_words_stay() {
        assert_eq!(redact("I waited 45 minutes in line 3"), "I waited 45 minutes in line 3");
        assert_eq!(redact("in 1999 it cost 20.50"), "in 1999 it cost 20.50");
        assert_eq!(redact("an @ sign alone"), "an @ sign alone");
        assert_eq!(redact(""), "");
    }
}
