//! PII redaction applied to transcripts before anything leaves the device (only when
//! `privacy.publish_transcripts = true`; transcripts are not published by default).
//!
//! | what | example | becomes |
//! |---|---|---|
//! | e-mail address | `jane.doe@example.com` | `[email]` |
//! | phone number, 7 to 12 digits in one run of digit groups and separators | `(555) 123-4567`, `+44 20 7946 0958`, `555.123.4567` | `[phone]` |
//! | card-like number: 13 to 19 digits passing the Luhn check | `4111 1111 1111 1111` | `[card]` |
//! | any other run of 13 or more digits (account, ID numbers) | `1234567890123` | `[number]` |
//! | spelled-out digits, alone or mixed with numerals (`oh`/`o` = 0, `double`/`triple` repeat the next) | `five five five one two three four` | `[phone]` (or `[card]`/`[number]` by the rules above) |
//! | street address: a house number, one to three capitalised words, a street type | `221B Baker Street`, `42 North Main St.` | `[address]` |
//!
//! Cheap rules, no model: they miss what they do not describe (a name, a spoken postcode, an
//! address without a house number or in lower case), and a counted-out run of seven or more
//! digits is redacted even when it was not a number of anybody's (`one two three four five six
//! seven`). Ordinary numbers (`45 minutes`, `line 3`, `in 1999`, `20.50`) stay.

/// Replaces e-mail addresses, phone and card numbers, long digit runs (also spelled out) and
/// street addresses in `text` by `[email]`, `[phone]`, `[card]`, `[number]` and `[address]`.
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
        if let Some(j) = address_end(&words, i) {
            out.push(keep_punct(words[j - 1], "[address]"));
            i = j;
            continue;
        }
        // A run of digit groups, separators and digit words: collect its digits.
        let mut j = i;
        let mut digits = String::new();
        let mut repeat = 1;
        while j < words.len() {
            let t = trim_punct(words[j]).to_ascii_lowercase();
            if let Some(n) = repeat_word(&t) {
                // `double five`: only inside a run that goes on with a digit.
                if j + 1 < words.len() && digit_of(&trim_punct(words[j + 1]).to_ascii_lowercase()).is_some() {
                    repeat = n;
                    j += 1;
                    continue;
                }
                break;
            }
            if let Some(d) = digit_of(&t) {
                for _ in 0..repeat {
                    digits.push(d);
                }
            } else if is_numberish(&t) {
                digits.extend(t.chars().filter(|c| c.is_ascii_digit()));
            } else {
                break;
            }
            repeat = 1;
            // A sentence end inside a run ends it (`… line 3. Seven …`).
            if words[j].ends_with(['.', '!', '?']) && !is_numberish(trim_punct(words[j])) {
                j += 1;
                break;
            }
            j += 1;
        }
        if j > i && digits.len() >= 7 {
            let run = words[i..j].join(" ");
            let label = match digits.len() {
                13..=19 if luhn(&digits) => "[card]",
                13.. => "[number]",
                _ => "[phone]",
            };
            out.push(keep_punct(&run, label));
            i = j;
            continue;
        }
        out.push(w.to_string());
        i += 1;
    }
    out.join(" ")
}

/// The Luhn checksum of a digit string holds (as on payment cards).
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (k, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else { return false };
        if k % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

fn digit_of(w: &str) -> Option<char> {
    Some(match w {
        "zero" | "oh" | "o" => '0',
        "one" => '1',
        "two" => '2',
        "three" => '3',
        "four" => '4',
        "five" => '5',
        "six" => '6',
        "seven" => '7',
        "eight" => '8',
        "nine" => '9',
        _ => return None,
    })
}

fn repeat_word(w: &str) -> Option<usize> {
    match w {
        "double" => Some(2),
        "triple" => Some(3),
        _ => None,
    }
}

const STREET_TYPES: &[&str] = &[
    "street",
    "st",
    "avenue",
    "ave",
    "road",
    "rd",
    "boulevard",
    "blvd",
    "lane",
    "ln",
    "drive",
    "dr",
    "court",
    "ct",
    "way",
    "place",
    "pl",
    "terrace",
    "close",
    "crescent",
    "square",
    "highway",
    "parkway",
    "alley",
];

/// When `words[i..]` starts with a street address (`221B Baker Street`), the index after it.
fn address_end(words: &[&str], i: usize) -> Option<usize> {
    let num = trim_punct(words[i]);
    let digits = num.chars().take_while(|c| c.is_ascii_digit()).count();
    let rest = &num[digits..];
    if !(1..=5).contains(&digits)
        || rest.chars().count() > 1
        || !rest.chars().all(|c| c.is_ascii_alphabetic())
    {
        return None;
    }
    // One to three capitalised words, then a street type.
    for k in 1..=4 {
        let w = words.get(i + k)?;
        let t = trim_punct(w);
        if k >= 2 && STREET_TYPES.contains(&t.to_ascii_lowercase().as_str()) {
            return Some(i + k + 1);
        }
        let capitalised =
            t.chars().next().is_some_and(|c| c.is_uppercase()) && t.chars().all(char::is_alphabetic);
        if k == 4 || !capitalised || w.ends_with([',', '.', '!', '?', ';']) {
            return None;
        }
    }
    None
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
    use super::{luhn, redact};

    #[test]
    fn emails() {
        assert_eq!(redact("mail me at jane.doe@example.com, thanks"), "mail me at [email], thanks");
        assert_eq!(redact("(a.b+c@mail.example.org)"), "[email]");
        assert_eq!(redact("an @ sign alone, or me@home"), "an @ sign alone, or me@home");
    }

    #[test]
    fn phone_numbers_in_common_formats() {
        for (said, want) in [
            ("call 555-123-4567 now", "call [phone] now"),
            ("call (555) 123-4567 now", "call [phone] now"),
            ("call 555.123.4567 now", "call [phone] now"),
            ("call 5551234567 now", "call [phone] now"),
            ("call +1 555 123 4567 now", "call [phone] now"),
            ("my number is +44 20 7946 0958.", "my number is [phone]."),
            ("ring 020 7946 0958, please", "ring [phone], please"),
            ("it's 123-4567", "it's [phone]"),
        ] {
            assert_eq!(redact(said), want, "{said}");
        }
    }

    #[test]
    fn card_numbers_pass_luhn_other_long_runs_are_numbers() {
        assert!(luhn("4111111111111111") && luhn("79927398713") && !luhn("4111111111111112"));
        assert_eq!(redact("card 4111 1111 1111 1111 expires"), "card [card] expires");
        assert_eq!(redact("4111-1111-1111-1111"), "[card]");
        assert_eq!(redact("amex 3782 822463 10005."), "amex [card].");
        assert_eq!(redact("card 4111 1111 1111 1112 expires"), "card [number] expires");
        assert_eq!(redact("account 12345678901234"), "account [number]");
    }

    #[test]
    fn spelled_out_digit_sequences() {
        assert_eq!(redact("it's five five five one two three four"), "it's [phone]");
        assert_eq!(redact("call oh two oh, seven nine four six, oh nine five eight."), "call [phone].");
        assert_eq!(redact("double five triple one two three four"), "[phone]");
        assert_eq!(redact("five 5 5, 1 two 3 four thanks"), "[phone] thanks");
        assert_eq!(
            redact("the card is four one one one one one one one one one one one one one one one"),
            "the card is [card]"
        );
        // Few digits, or digit words in ordinary speech, stay.
        assert_eq!(redact("one or two people, oh well"), "one or two people, oh well");
        assert_eq!(redact("I want two, no, three tickets"), "I want two, no, three tickets");
        assert_eq!(redact("a double room for two"), "a double room for two");
    }

    #[test]
    fn street_addresses() {
        assert_eq!(redact("I live at 221B Baker Street, London"), "I live at [address], London");
        assert_eq!(redact("send it to 42 North Main St, please"), "send it to [address], please");
        assert_eq!(redact("1600 Pennsylvania Avenue"), "[address]");
        // A number followed by ordinary words is not an address.
        assert_eq!(redact("I waited 45 minutes on the road"), "I waited 45 minutes on the road");
        assert_eq!(redact("we took 3 Main roads"), "we took 3 Main roads");
        assert_eq!(redact("gate 12 Street food"), "gate 12 Street food");
    }

    #[test]
    fn ordinary_numbers_and_words_stay() {
        assert_eq!(redact("I waited 45 minutes in line 3"), "I waited 45 minutes in line 3");
        assert_eq!(redact("in 1999 it cost 20.50"), "in 1999 it cost 20.50");
        assert_eq!(redact("bin blue at f two now"), "bin blue at f two now");
        assert_eq!(redact(""), "");
    }
}
