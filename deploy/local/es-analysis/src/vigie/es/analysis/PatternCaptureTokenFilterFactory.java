package vigie.es.analysis;

import java.util.List;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.index.analysis.AbstractTokenFilterFactory;

/**
 * The pattern_capture token filter: every capture group of every pattern that matches a token
 * becomes a token of its own; preserve_original (default true) keeps the token itself too.
 * The .security index splits e-mail addresses with it ("jane.doe@ars.fr" also yields "jane",
 * "doe", "ars.fr"...) so that users and API-key owners can be searched by part of an address.
 */
final class PatternCaptureTokenFilterFactory extends AbstractTokenFilterFactory {

    private final Pattern[] patterns;
    private final boolean preserveOriginal;

    PatternCaptureTokenFilterFactory(String name, Settings settings) {
        super(name);
        List<String> regexes = settings.getAsList("patterns", null, false);
        if (regexes == null) {
            throw new IllegalArgumentException(
                "required setting 'patterns' is missing for token filter [" + name + "]");
        }
        this.patterns = regexes.stream().map(Pattern::compile).toArray(Pattern[]::new);
        this.preserveOriginal = settings.getAsBoolean("preserve_original", true);
    }

    @Override
    public TokenStream create(TokenStream tokenStream) {
        return new PatternCaptureGroupTokenFilter(tokenStream, preserveOriginal, patterns);
    }
}
