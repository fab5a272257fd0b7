package vigie.es.analysis;

import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.standard.StandardAnalyzer;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.index.analysis.AbstractTokenizerFactory;

/**
 * The uax_url_email tokenizer: Unicode word boundaries (as the standard tokenizer) that keep
 * URLs and e-mail addresses whole, so the .security index's e-mail analyzer sees an address as
 * one token before pattern_capture splits it. max_token_length defaults to 255, as in
 * Elasticsearch.
 */
final class UaxUrlEmailTokenizerFactory extends AbstractTokenizerFactory {

    private final int maxTokenLength;

    UaxUrlEmailTokenizerFactory(String name, Settings settings) {
        super(name);
        this.maxTokenLength =
            settings.getAsInt("max_token_length", StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH);
    }

    @Override
    public Tokenizer create() {
        UAX29URLEmailTokenizer tokenizer = new UAX29URLEmailTokenizer();
        tokenizer.setMaxTokenLength(maxTokenLength);
        return tokenizer;
    }
}
