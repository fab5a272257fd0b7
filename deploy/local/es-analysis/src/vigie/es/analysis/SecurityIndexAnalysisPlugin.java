/*
 * The analysis components Elasticsearch's own .security index needs, for the local stack only.
 *
 * Why this exists: the local stack (deploy/local) runs the integ-test distribution of
 * Elasticsearch, the only 9.x build Maven Central serves. It has the server and x-pack security
 * but none of the optional modules, analysis-common among them. The .security index, where
 * Elasticsearch stores API keys (and native users, roles, tokens), declares an analyzer for
 * e-mail addresses:
 *
 *     analysis.filter.email:   type pattern_capture, preserve_original true,
 *                              patterns ["([^@]+)", "(\\p{L}+)", "(\\d+)", "@(.+)"]
 *     analysis.analyzer.email: tokenizer uax_url_email, filter [email, lowercase, unique]
 *
 * Without analysis-common the index cannot be created, so POST /_security/api_key fails with
 * "Unknown filter type [pattern_capture] for [email]". This plugin registers exactly the three
 * types that are missing (lowercase is pre-configured in the server itself), with the
 * parameters Elasticsearch's own implementations take, on top of the Lucene classes that ship
 * in the distribution's lib/ (lucene-analysis-common).
 *
 * Production clusters run the full distribution (or the Docker image, as deploy/compose does),
 * whose analysis-common module provides these types: this plugin is never installed there and
 * would clash with that module if it were.
 *
 * It uses the classic AnalysisPlugin API rather than the stable plugin API
 * (org.elasticsearch.plugin.analysis): both compile against 9.5.0's lib/, but a stable plugin
 * is found through a named_components.json that Elasticsearch's Gradle plugin generates by
 * scanning classes, which a plain javac build would have to imitate by hand; and the stable
 * API's promise (one binary across Elasticsearch versions) buys nothing here, since the local
 * stack rebuilds the plugin against each distribution it installs.
 */
package vigie.es.analysis;

import java.util.Map;

import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

/** Registers pattern_capture, unique (token filters) and uax_url_email (tokenizer). */
public final class SecurityIndexAnalysisPlugin extends Plugin implements AnalysisPlugin {

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        // pattern_capture means nothing without its patterns: Elasticsearch refuses to use it
        // by bare name (as analysis-common does).
        return Map.of(
            "pattern_capture", AnalysisPlugin.requiresAnalysisSettings(
                (indexSettings, environment, name, settings) ->
                    new PatternCaptureTokenFilterFactory(name, settings)),
            "unique", (indexSettings, environment, name, settings) ->
                new UniqueTokenFilterFactory(name, settings));
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of("uax_url_email", (indexSettings, environment, name, settings) ->
            new UaxUrlEmailTokenizerFactory(name, settings));
    }
}
