"""Phrase banks for the synthetic sample study in :mod:`miner.sample`."""

from __future__ import annotations

# Interviewer questions, several paraphrases per dimension, in interview order.
QUESTIONS: dict[str, tuple[str, ...]] = {
    "understanding": (
        "How well did the assistant understand what you were asking for?",
        "Did the model grasp what you wanted from it? Tell me a bit about that.",
        "To start, how would you describe the AI's understanding of your request?",
        "Thinking back to the chat, did the assistant get what you meant?",
        "In your own words, how well did it understand your request?",
    ),
    "needs": (
        "Did the responses meet your needs? Why or why not?",
        "How well did the assistant address what you needed?",
        "Were you able to get what you needed out of the conversation?",
        "To what extent did the AI's answers serve your purpose?",
    ),
    "credibility": (
        "Were the responses coherent, factual and relevant?",
        "How credible did you find the information it gave you?",
        "Did anything it said seem inaccurate, off-topic or confusing?",
        "How much did you trust the accuracy and relevance of its answers?",
    ),
    "satisfaction": (
        "On a scale of 1 to 5, how satisfied are you with the assistant?",
        "How would you rate your satisfaction, from 1 (very dissatisfied) to 5 (very satisfied)?",
        "If you had to give the session a score from 1 to 5, what would it be?",
        "How satisfied were you with the interaction, on a 1-5 scale?",
    ),
    "improvements": (
        "What could the assistant have done better?",
        "If you could change one thing about the AI, what would it be?",
        "Is there anything you'd like to see improved?",
        "What would have made the experience better for you?",
    ),
    "overall": (
        "Finally, what's your overall opinion of the assistant?",
        "Anything else you'd like to share about your experience?",
        "To wrap up, how would you sum up your impression of the model?",
        "Overall, what did you think of it?",
    ),
}

# Said before every question but the first, as interviewer LLMs do.
ACKNOWLEDGEMENTS = ("", "", "Thanks. ", "Got it. ", "I see. ", "Thank you for sharing. ", "That's helpful. ")

# Neutral openers and endings shared by all themes: they add surface variety
# without pulling answers of different themes towards each other.
OPENERS = (
    "", "", "", "", "Honestly, ", "I think ", "I feel like ", "To be honest, ", "Well, ",
    "I'd say ", "For me, ", "Hmm, ", "Mostly ", "I noticed ", "tbh ",
)
ENDINGS = (".", ".", ".", "", "!", " I guess.", " to be honest.", "...", " overall.", " for sure.")

# Theme key -> (claims, slot fillers). An answer is one or two claims of its theme:
# mixing claims fills the space between templates, so each theme embeds as one
# connected region instead of one island per template. Sixteen claims per theme keep
# each one too rare to form a cluster of its own in a 300-interview study. Every
# claim names the theme's own idea, and fillers stay on it (no concrete side topics).
THEMES: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    "too_verbose": (
        (
            "the answers were {long}", "the responses were {long}", "it {ramble}", "every reply was {long}",
            "I had to scroll through {wall} to find the actual answer", "I just wanted {want} and got {wall}",
            "it {ramble} when I asked for {want}", "it could have said it in half the words, the replies were {long}",
            "there was too much text, it {ramble}", "the answers should be shorter, they were {long}",
            "I asked for {want} and it {ramble}", "the length was the problem, it {ramble}",
            "it gave me {wall} for a simple question", "it's way too wordy, it {ramble}",
            "I got tired of reading {wall}", "it needs to be less verbose, the replies were {long}",
        ),
        {
            "long": (
                "way too long", "far longer than needed", "really long-winded", "overly wordy", "full of filler",
                "padded with fluff", "super verbose", "bloated", "longer than they had to be",
            ),
            "ramble": (
                "rambled on and on", "kept over-explaining everything", "wrote an essay for every question",
                "buried the answer in long paragraphs", "was way too verbose", "went on far too long",
                "kept adding unnecessary detail", "repeated itself in long paragraphs",
            ),
            "wall": ("walls of text", "huge paragraphs", "a long essay", "pages of explanation", "a wall of text"),
            "want": ("a short answer", "a quick yes or no", "one sentence", "a brief reply", "a simple answer"),
        },
    ),
    "made_up_citation": (
        (
            "it gave me {cite} that turned out to be {fake}", "some of the {cite} it listed were {fake}",
            "the {cite} it gave didn't exist {check}", "it invented {cite} and presented them as real",
            "I caught it making up {cite}", "it listed {cite} that don't exist",
            "the {cite} looked legit but were {fake} {check}", "it confidently quoted {cite} that were {fake}",
            "half the {cite} it gave were {fake}", "none of the {cite} checked out {check}",
            "it cites {cite} that are {fake}", "I couldn't find any of its {cite} {check}",
            "it made up {cite} to support its claims", "you can't trust its {cite}, they were {fake}",
            "the authors and titles in its {cite} were {fake}", "it backed its answer with {fake} {cite}",
        ),
        {
            "cite": (
                "citations", "sources", "references", "journal articles", "studies", "academic papers",
                "book references", "source links", "research papers", "quotes and sources",
            ),
            "fake": ("made up", "fabricated", "completely invented", "fake", "nonexistent", "hallucinated", "bogus"),
            "check": (
                "when I looked them up", "when I tried to verify them", "when I searched for them",
                "once I checked", "when I googled them", "when I went to check",
            ),
        },
    ),
    "great_for_code": (
        (
            "it {helped} {code} in seconds", "it's {praise}", "it {helped} {code} and the code ran first try",
            "the {code_out} it wrote actually worked", "it's {praise}, it {helped} {code}",
            "for coding help it's great, it {helped} {code}", "it spotted the bug in {code} right away",
            "the {code_out} it gave compiled and ran without changes", "it's {praise} and explains the code clearly",
            "it wrote {code} for me that worked perfectly", "as a programmer I found it {praise}",
            "it {helped} {code} better than I could", "the {code_out} were clean and correct",
            "it's {praise}, the {code_out} just worked", "it helped me debug {code} quickly",
            "I'd use it for coding any day, it {helped} {code}",
        ),
        {
            "code": (
                "my Python script", "a SQL query", "my JavaScript function", "a bash script", "my unit tests",
                "some pandas code", "my code", "a React component", "my regex", "a Java class", "my API call",
                "a Dockerfile", "a C++ loop", "my Go handler",
            ),
            "code_out": ("code", "Python code", "code snippets", "functions", "scripts", "code examples"),
            "helped": (
                "fixed a bug in", "debugged", "rewrote", "explained the error in", "cleaned up", "refactored",
                "optimised", "sped up",
            ),
            "praise": (
                "really good at coding", "great for programming", "excellent with code", "a solid coding assistant",
                "very handy for programming tasks", "a great pair programmer", "strong at writing code",
            ),
        },
    ),
    "refused_harmless": (
        (
            "it {refused} {harmless}", "it {refused} {harmless}, saying it couldn't help with that",
            "it was {caution} and {refused} {harmless}", "it gave me a safety lecture instead of answering {harmless}",
            "I got an 'I can't help with that' for {harmless}", "it's {caution}, it {refused} {harmless}",
            "it treated {harmless} like it was dangerous", "it refused {harmless} and said it was against its policy",
            "it {refused} {harmless}, which is ridiculous", "there were too many refusals, it's {caution}",
            "it kept saying it couldn't assist with {harmless}", "it said no to {harmless} for no reason",
            "I was refused on {harmless}", "it's {caution}, even {harmless} got refused",
            "it flagged {harmless} as unsafe and refused", "the refusals were annoying, it {refused} {harmless}",
        ),
        {
            "refused": (
                "refused to help with", "wouldn't answer", "declined to help with", "wouldn't touch",
                "flat out refused", "refused to answer", "wouldn't engage with", "turned down",
            ),
            "harmless": (
                "a totally harmless question", "a perfectly innocent request", "a normal question",
                "something completely benign", "a simple harmless request", "an innocent question",
                "a harmless everyday question", "a perfectly safe request", "an ordinary request",
            ),
            "caution": (
                "overly cautious", "too censored", "way too restrictive", "paranoid about safety",
                "preachy about safety", "too quick to refuse", "overly careful", "too strict",
            ),
        },
    ),
    "understood_intent": (
        (
            "it understood {meant} {vague}", "it got {meant} {vague}", "it figured out {meant} {vague}",
            "it read between the lines and understood {meant}", "I didn't have to rephrase, it understood {meant}",
            "it clearly understood {meant}", "it picked up on {meant} {vague}",
            "it understood the context of my request {vague}", "it knew exactly {meant} {vague}",
            "it grasped {meant} on the first try", "it understood me {vague}", "it caught {meant} {vague}",
            "it seemed to understand {meant} perfectly", "it understood {meant}, no need to explain twice",
            "it was good at understanding {meant}", "it worked out {meant} {vague}",
        ),
        {
            "meant": (
                "what I meant", "what I was after", "my intent", "what I was really asking",
                "the point of my question", "what I needed", "what I wanted", "what I was trying to say",
            ),
            "vague": (
                "even though my question was vague", "even with my badly worded prompt",
                "even when I phrased it poorly", "without me having to explain much",
                "from a pretty messy description", "right away", "from just a few words",
                "even with my typos", "on the first attempt",
            ),
        },
    ),
    "fast_and_concise": (
        (
            "it was {fast} and {concise}", "the replies came back {fast_adv}",
            "it answered {fast_adv}, no waiting around",
            "responses were {fast} and {concise}", "I liked how {fast} it was",
            "the speed was impressive, it answered {fast_adv}",
            "it gave {fast} responses that were {concise}", "it was {fast}, it answered {fast_adv}",
            "it answered {fast_adv} and was {concise}", "it's {fast}, I never had to wait",
            "I got {concise} answers {fast_adv}", "the response time was {fast}",
            "there was no lag at all, replies were {fast}",
            "it was {fast}, which saved me time", "it responded {fast_adv} with {concise} answers",
            "it was super responsive, answers came {fast_adv}",
        ),
        {
            "fast": (
                "really fast", "super quick", "lightning fast", "very snappy", "quick", "speedy", "very fast", "rapid",
            ),
            "fast_adv": (
                "almost instantly", "in a second or two", "right away", "immediately", "in no time", "super fast",
                "within seconds", "quickly",
            ),
            "concise": (
                "concise", "to the point", "crisp", "efficient", "direct and concise", "succinct", "brief and useful",
            ),
        },
    ),
    "outdated_knowledge": (
        (
            "its {thing} was {old}", "it didn't know about {recent}", "it gave me {stale} {thing}",
            "its knowledge cutoff is a problem, it didn't know about {recent}",
            "it seemed stuck in the past and had no idea about {recent}", "a lot of the {thing} it gave was {old}",
            "when I asked about {recent} its details were {old}", "it acted like {recent} hadn't happened yet",
            "its knowledge felt {old}, it missed {recent}", "it kept referring to {stale} {thing}",
            "it's not up to date, it missed {recent}", "the {thing} was {old}, not current at all",
            "it had no clue about {recent}", "it needs more recent training data, its {thing} was {old}",
            "everything it said about {recent} was {old}", "it gave {stale} {thing} as if it were current",
        ),
        {
            "old": ("out of date", "outdated", "old", "stale", "behind the times", "a couple of years old", "obsolete"),
            "stale": ("outdated", "old", "stale", "obsolete", "out-of-date", "years-old"),
            "thing": ("information", "info", "news", "advice", "data", "guidance", "knowledge"),
            "recent": (
                "recent events", "this year's events", "recent updates", "recent developments", "the latest releases",
                "last month's news", "current events", "the newest versions",
            ),
        },
    ),
    "friendly_tone": (
        (
            "it was really {friendly} and easy to talk to", "it felt like {like}",
            "the tone was {friendly} and {friendly2}",
            "I liked how {friendly} it was", "it had a {friendly} tone that put me at ease",
            "it was {friendly} and patient with my questions",
            "it had such a {friendly} personality, it felt like {like}",
            "the way it talked was {friendly} and {friendly2}", "it was {friendly} and made me feel comfortable",
            "it was very {friendly} and {friendly2}", "chatting with it was like {like}",
            "it was always {friendly} with me",
            "I loved its {friendly} attitude", "its tone was {friendly2}, like {like}",
            "it came across as {friendly} and {friendly2}",
            "it's a really {friendly} assistant, {friendly2} too",
        ),
        {
            "friendly": (
                "friendly", "warm", "kind", "polite", "cheerful", "personable", "encouraging", "nice", "gentle",
            ),
            "friendly2": ("welcoming", "upbeat", "supportive", "pleasant", "friendly", "caring"),
            "like": (
                "talking to a friend", "chatting with a friendly coworker", "talking to a real person",
                "a friendly tutor", "a kind neighbour", "a helpful friend",
            ),
        },
    ),
}
# Joins the two claims of a two-claim answer.
CONNECTORS = (". ", ", and ", ". Also ", "; ", ", plus ", " and ")

# Everyday chatter: deliberately spread over many topics, so off-topic answers are diverse.
OFF_TOPIC_LEADS = ("", "", "Unrelated, but ", "Side note: ", "Not about the AI, but ", "Random thought: ", "Oh, also ")
OFF_TOPIC = (
    "it's been raining all day here and I forgot my umbrella",
    "I'm getting hungry, thinking about pizza for lunch",
    "my cat keeps walking across my keyboard",
    "is it Friday yet",
    "the traffic this morning was terrible",
    "I really need another coffee",
    "did anyone watch the game last night",
    "my neighbour is mowing the lawn at 7am again",
    "I'm planning a trip to the beach this weekend",
    "we had tacos for dinner yesterday and they were amazing",
    "the sun finally came out after a week of clouds",
    "my dog needs a walk soon",
    "I just started a new book about the Roman empire",
    "my kids have a soccer tournament on Saturday",
    "it's freezing in my apartment right now",
    "the bus was late again today",
    "I've been binge watching a cooking show",
    "my garden tomatoes are finally turning red",
    "I can hear thunder outside",
    "I still haven't had breakfast",
    "the new bakery down the street is really good",
    "my phone battery is almost dead",
    "I'm thinking of painting the living room blue",
    "the wifi at this cafe keeps dropping",
    "I went for a long run this morning",
    "my sister is visiting next week",
    "there's a bird building a nest on my balcony",
    "I'm trying to decide what to cook tonight",
    "the concert last night was so loud",
    "I need to renew my passport",
)

# Low effort: empty, one word, or a shrug.
LOW_EFFORT = (
    "", "", "idk", "fine", "no", "ok", "n/a", "dunno", "good", "yes", "meh", "k",
    "nope", "not sure", "whatever", "same", "?", "na",
)
# Pasted into every answer of a low-quality interview.
COPY_PASTE = ("it was ok", "good", "nothing to add", "asdf", "same as above", "no comment", "fine i guess")

# Satisfaction answers: a number form inside a pattern that mostly also says how
# satisfied the user is; the shared "satisfied" keeps the varied forms in one region.
# {r}: rating, {w}: as a word, {t}: out of ten, {lo}/{hi}: a range around it,
# {sat}: satisfaction words, {why}: a short reason, {num}: lead + number form.
RATING_FORMS = ("{r} out of 5", "{w} out of five", "{r} out of five", "a {r}", "{r}", "{w}")
# Forms that embed far from the rest; kept rare so none is common enough to form its own cluster.
RATING_ODD_FORMS = ("{r}/5", "{t} out of 10", "somewhere between {lo} and {hi}", "between {lo} and {hi} out of 5")
RATING_LEADS = ("", "", "", "", "I'd give it ", "I'd rate it ", "probably ", "maybe ", "I'd say ")
RATING_PATTERNS = (
    "{sat}, {num}", "{sat}, so {num}", "I'm {sat}, {num}", "{num}, I'm {sat}", "{num} - {sat}",
    "{sat} overall, {num}", "I was {sat}, {num}", "{num}, {sat} overall", "{sat}: {num}", "{num}; {sat}",
)
# Answers without the satisfaction words, or without a number.
RATING_BARE_PATTERNS = ("{num}", "{num}", "{num}, {why}", "I'm {sat} with it")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")
SATISFACTION_WORDS = {
    1: ("very dissatisfied", "not satisfied at all", "really unsatisfied"),
    2: ("not very satisfied", "somewhat dissatisfied", "a bit unsatisfied"),
    3: ("somewhat satisfied", "moderately satisfied", "fairly satisfied"),
    4: ("pretty satisfied", "quite satisfied", "mostly satisfied"),
    5: ("very satisfied", "extremely satisfied", "completely satisfied"),
}
RATING_REASONS = {
    1: (
        "it didn't help", "waste of time", "it failed the task", "it got most things wrong", "I gave up on it",
        "really frustrating",
    ),
    2: (
        "it barely helped", "not great", "below what I expected", "it missed a lot", "I had to redo most of it",
        "only partly useful",
    ),
    3: ("it was ok", "it did the job", "average", "some good, some bad", "decent but not great", "it helped a bit"),
    4: (
        "it did the job well", "pretty good", "minor issues only", "it mostly worked", "good with a few hiccups",
        "helpful overall",
    ),
    5: (
        "it was excellent", "couldn't ask for more", "it nailed it", "it did everything I asked", "great experience",
        "really impressed",
    ),
}
# Joins a reason onto a rating answer.
REASON_JOINS = (", ", ". ", " - ", "; ")

# Session tasks: (user, assistant) exchanges; a chat opens with one of "openings"
# and goes on with follow-ups of the same task, in their listed order (thanks last).
TASKS: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "coding": {
        "openings": (
            ("My Python script throws a KeyError when the config file is missing a field. How do I fix it?",
             "Use dict.get() with a default, e.g. value = config.get('timeout', 30), so a missing key falls back "
             "instead of raising."),
            ("Can you write a SQL query that returns the top 5 customers by total order value?",
             "SELECT customer_id, SUM(total) AS value FROM orders GROUP BY customer_id ORDER BY value DESC LIMIT 5;"),
            ("Why does my JavaScript fetch call return a pending Promise instead of the data?",
             "fetch is asynchronous: await the call inside an async function, then await response.json() to get "
             "the data."),
        ),
        "follow_ups": (
            ("Can you add a unit test for that?",
             "Sure. Here's a pytest test that covers the missing-value case and the normal case."),
            ("What about edge cases?",
             "Good question. Empty input and very large input are worth handling explicitly."),
            ("It still fails with the same error.",
             "Could you paste the full traceback? The line number will show which call fails."),
            ("Thanks, that worked!", "Glad it helped! Let me know if anything else comes up."),
        ),
    },
    "research": {
        "openings": (
            ("Can you summarise the research on sleep and memory, with sources?",
             "Several studies link slow-wave sleep to memory consolidation; for example, Walker (2009) reviews the "
             "evidence."),
            ("What does the literature say about remote work and productivity? Please cite studies.",
             "Findings are mixed: some studies report productivity gains, others report collaboration costs. Key "
             "references include Bloom et al. (2015)."),
            ("I need three peer-reviewed references on microplastics in drinking water.",
             "Here are three references on microplastics in drinking water, with a short summary of each."),
        ),
        "follow_ups": (
            ("Can you give me the DOI for the first one?",
             "Certainly. The DOI is listed in the reference above; paste it into doi.org to open the article."),
            ("Are these sources peer-reviewed?", "Yes, all of them appeared in peer-reviewed journals."),
            ("I can't find that paper anywhere.",
             "I apologise for the confusion. The title may differ slightly; try searching for the authors' names."),
            ("Can you summarise the main finding in one sentence?",
             "In short: sleep after learning helps memories stick."),
        ),
    },
    "current_events": {
        "openings": (
            ("What's the latest version of the React library and what changed?",
             "As of my last update, the latest major version introduced a new rendering model; check the release "
             "notes for newer versions."),
            ("Which phones came out this year with the best cameras?",
             "Some of the best-reviewed camera phones include several flagship models released last year."),
            ("Give me a quick update on this month's tech news.",
             "I may not have the most recent information, but here are some notable developments I know of."),
        ),
        "follow_ups": (
            ("That's from last year, isn't it?",
             "You may be right; my information may not include the most recent releases."),
            ("Is there anything newer?", "I don't have information about releases after my training data ends."),
            ("Which one would you recommend?",
             "Based on what I know, the second option offers the best balance of price and features."),
            ("Thanks anyway.", "You're welcome! For the latest news, an up-to-date source is best."),
        ),
    },
    "writing": {
        "openings": (
            ("Help me write a polite email asking my landlord to fix the heating.",
             "Dear Ms. Patel, I'm writing to let you know the heating in my flat has stopped working. Could you "
             "arrange a repair this week?"),
            ("Can you make this cover letter paragraph sound more confident?",
             "Here's a more confident version: 'I led a team of five to ship the project two weeks early.'"),
            ("Write a short toast for my brother's wedding.",
             "To my brother and his wonderful new wife: may your home always be full of laughter. Cheers!"),
        ),
        "follow_ups": (
            ("Can you make it shorter?", "Sure, here's a shorter version that keeps the main point."),
            ("Make it a bit more formal.", "Of course. I've replaced the casual phrases with more formal wording."),
            ("Can you add a line about the deadline?",
             "Done: I added 'I would appreciate a reply by Friday.' at the end."),
            ("Perfect, thank you.", "You're welcome, good luck!"),
        ),
    },
    "planning": {
        "openings": (
            ("Plan a 3-day trip to Lisbon on a budget.",
             "Day 1: Alfama and the castle. Day 2: Belem and the riverside. Day 3: a day trip to Sintra by train."),
            ("I have chicken, rice and spinach. What can I cook tonight?",
             "Try a one-pan chicken and spinach rice: brown the chicken, add rice and stock, stir in spinach at "
             "the end."),
            ("Make me a weekly study schedule for my chemistry exam.",
             "Monday and Wednesday: stoichiometry. Tuesday and Thursday: organic chemistry. Friday: practice exam."),
        ),
        "follow_ups": (
            ("Can you make it cheaper?", "Sure: swap the paid options for free ones and cook at home where you can."),
            ("How long will that take?", "About an hour in total, including preparation."),
            ("Can you add a rest day?", "Good idea. I moved the practice exam to Saturday and left Sunday free."),
            ("Great, thanks!", "You're welcome, enjoy!"),
        ),
    },
    "sensitive": {
        "openings": (
            ("How do I kill a process that's frozen on Linux?", "I'm sorry, but I can't help with that request."),
            ("How does lock picking actually work? I'm curious after watching a video.",
             "I can't provide instructions that could be used to bypass security measures."),
            ("Write a menacing monologue for the villain in my fantasy novel.",
             "I'd rather not write threatening content, even for fiction."),
        ),
        "follow_ups": (
            ("It's for a harmless reason, I promise.", "I understand, but I still can't help with that one."),
            ("Why not? This is a normal question.", "I aim to avoid content that could potentially cause harm."),
            ("Can you at least point me somewhere?", "You could consult the official documentation or a professional."),
            ("OK, never mind.", "Sorry I couldn't be more helpful. Is there anything else I can do?"),
        ),
    },
}
# Themes that make one task more likely, so the chat fits what the user says about it.
THEME_TASKS = {
    "great_for_code": "coding",
    "made_up_citation": "research",
    "outdated_knowledge": "current_events",
    "refused_harmless": "sensitive",
}
