package vigie.es.analysis;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.miscellaneous.RemoveDuplicatesTokenFilter;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.index.analysis.AbstractTokenFilterFactory;

/**
 * The unique token filter: drops a token already seen in the same field value (the e-mail
 * analyzer emits "ars" twice for "ars@ars.fr", for instance). With only_on_same_position
 * (default false) it drops only duplicates stacked at one position, which is what Lucene's
 * RemoveDuplicatesTokenFilter does; Lucene has no filter for the default, whole-value case,
 * hence {@link UniqueTokenFilter}.
 */
final class UniqueTokenFilterFactory extends AbstractTokenFilterFactory {

    private final boolean onlyOnSamePosition;

    UniqueTokenFilterFactory(String name, Settings settings) {
        super(name);
        this.onlyOnSamePosition = settings.getAsBoolean("only_on_same_position", false);
    }

    @Override
    public TokenStream create(TokenStream tokenStream) {
        return onlyOnSamePosition
            ? new RemoveDuplicatesTokenFilter(tokenStream)
            : new UniqueTokenFilter(tokenStream);
    }
}
